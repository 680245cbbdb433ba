/* Inside the widget's frame (a Tierline page framed by a company's site). Two parts:
   - boot page: asks the embedding page for the chat it keeps, then opens it by a form post (the
     token travels in the post, never in a URL, and no cookie is needed);
   - every other page: tells the embedding page (its origin only) which chat this visitor holds,
     each new message and the chat's end, and passes it custom attributes the page sets later. */

const boot = document.getElementById("widget-boot");
const stateEl = document.getElementById("widget-state");

function postForm(action, fields) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value == null ? "" : String(value);
    form.append(input);
  }
  document.body.append(form);
  form.submit();
}

if (boot) {
  const { open_url: openUrl } = JSON.parse(boot.textContent);
  window.addEventListener("message", (e) => {
    // Only the window that framed this page; its origin, as the browser states it, is where
    // this frame will ever send the token (the server checks it against the site's origins).
    if (e.source !== window.parent || e.data?.type !== "tierline:open") return;
    const d = e.data;
    postForm(openUrl, {
      parent: e.origin,
      visitor: d.token,
      name: d.name,
      email: d.email,
      page: d.page,
      title: d.title,
      referrer: d.referrer,
      attributes: JSON.stringify(d.attributes || {}),
    });
  });
  // Nothing secret in "ready": any origin may hear it.
  window.parent.postMessage({ type: "tierline:ready" }, "*");
} else if (stateEl) {
  const state = JSON.parse(stateEl.textContent);
  const post = (message) => window.parent.postMessage(message, state.parent);
  const room = document.getElementById("room");
  post({ type: "tierline:state", token: state.token, status: room ? room.dataset.status : "" });
  document.addEventListener("tierline:message", (e) =>
    post({ type: "tierline:message", ...e.detail }),
  );
  document.addEventListener("tierline:status", (e) =>
    post({ type: "tierline:status", status: e.detail.status }),
  );
  window.addEventListener("message", async (e) => {
    if (e.source !== window.parent || e.origin !== state.parent) return;
    if (e.data?.type !== "tierline:attributes" || !state.token) return;
    let reply;
    try {
      const response = await fetch(state.attributes_url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Tierline-Visitor": state.token },
        body: JSON.stringify({ attributes: e.data.attributes }),
      });
      const body = await response.json();
      reply = response.ok
        ? { ok: true, attributes: body.attributes }
        : { ok: false, error: body.error?.message || `Refused (${response.status}).` };
    } catch {
      reply = { ok: false, error: "Could not reach the chat server." };
    }
    post({ type: "tierline:attributes", ...reply });
  });
}
