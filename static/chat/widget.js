/* Tierline chat widget, for a company's own website:

     <script src="https://chat.example.com/widget.js" data-site="KEY" async></script>

   Draws a launcher button and opens the chat in a panel: a frame of Tierline's visitor pages,
   so Tierline's cookies, CSP and socket stay its own and nothing here needs third-party cookies.
   The visitor's chat token is kept in this site's own storage (so the chat survives navigation
   and reloads, and a second tab shows the same chat), handed to the frame by postMessage to
   Tierline's origin only. API: Tierline.open(), .close(), .identify({name, email, ...}),
   .set({plan: "pro"}), .on("chat:started" | "chat:ended" | "unread" | "attributes", fn), .off(name, fn).
   No framework, no build step. */
(() => {
  const script = document.currentScript;
  if (!script || window.Tierline?.version) return; // not a script tag, or loaded twice
  const key = script.dataset.site || "";
  const base = new URL(script.src, location.href).origin;
  const frameUrl = `${base}/chat/w/${encodeURIComponent(key)}/`;
  const storeKey = `tierline:${key}`;
  const NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,39}$/;
  const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  const MAX_ATTRIBUTES = 30;
  const MAX_VALUE_CHARS = 500;
  const UNREAD_KINDS = new Set(["agent", "system"]);

  /* ---- storage: this site's localStorage (shared by its tabs), memory if that is refused -- */
  let memory = {};
  function load() {
    try {
      return JSON.parse(localStorage.getItem(storeKey) || "{}") || {};
    } catch {
      return { ...memory };
    }
  }
  function save(changes) {
    const next = { ...load(), ...changes };
    memory = next;
    try {
      localStorage.setItem(storeKey, JSON.stringify(next));
    } catch {
      /* private mode or storage full: this page still works, the next one starts afresh */
    }
    return next;
  }
  function openFlag(value) {
    try {
      if (value === undefined) return sessionStorage.getItem(`${storeKey}:open`) === "1";
      sessionStorage.setItem(`${storeKey}:open`, value ? "1" : "0");
    } catch {
      /* no session storage: the panel does not reopen itself on the next page */
    }
    return value;
  }

  /* ---- checking what the page gives us (before anything is stored) ---- */
  function fail(method, message) {
    throw new TypeError(`Tierline.${method}: ${message}`);
  }
  function isPlainObject(value) {
    return (
      value !== null &&
      typeof value === "object" &&
      Object.getPrototypeOf(value) === Object.prototype
    );
  }
  /** Why one attribute value is refused, or "" if it is fine. */
  function valueProblem(name, value) {
    const type = typeof value;
    if (type === "string") {
      return value.length > MAX_VALUE_CHARS
        ? `"${name}" is longer than ${MAX_VALUE_CHARS} characters.`
        : "";
    }
    if (type === "number") {
      return Number.isFinite(value) && Math.abs(value) < 2 ** 53
        ? ""
        : `"${name}" is not a usable number.`;
    }
    if (type === "boolean" || value === null) return "";
    return `"${name}" must be text, a number, true/false or null.`;
  }
  function checkAttributes(method, attributes) {
    if (!isPlainObject(attributes)) fail(method, 'give an object, e.g. {plan: "pro"}.');
    for (const [name, value] of Object.entries(attributes)) {
      if (!NAME_RE.test(name)) {
        const shown = name.slice(0, 60);
        fail(
          method,
          `"${shown}" is not a valid name (a letter, then letters, digits, _ . or -; at most 40).`,
        );
      }
      const problem = valueProblem(name, value);
      if (problem) fail(method, problem);
    }
    return attributes;
  }
  function merged(old, attributes, method) {
    const next = { ...old };
    for (const [name, value] of Object.entries(attributes)) {
      if (value === null) delete next[name];
      else next[name] = value;
    }
    if (Object.keys(next).length > MAX_ATTRIBUTES)
      fail(method, `at most ${MAX_ATTRIBUTES} attributes.`);
    return next;
  }

  function checkIdentity(person) {
    if (!isPlainObject(person)) {
      fail("identify", 'give an object, e.g. {name: "Ada", email: "ada@example.com"}.');
    }
    const { name, email, ...rest } = person;
    const badName = typeof name !== "string" || !name.trim() || name.length > 100;
    if (name !== undefined && badName)
      fail("identify", "name must be text of 1 to 100 characters.");
    const badEmail = typeof email !== "string" || email.length > 254 || !EMAIL_RE.test(email);
    if (email !== undefined && badEmail) fail("identify", "email must be an e-mail address.");
    return { name, email, rest };
  }

  /* ---- events for the page ---- */
  const listeners = new Map();
  function emit(name, detail) {
    for (const fn of listeners.get(name) || []) {
      try {
        fn(detail);
      } catch (error) {
        console.error(error);
      }
    }
  }

  /* ---- the launcher and the panel, in a shadow root so neither side's CSS leaks ---- */
  const host = document.createElement("div");
  host.id = "tierline-widget";
  const root = host.attachShadow({ mode: "open" });
  const sheet = `
    :host { all: initial; }
    .launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; display: flex;
      align-items: center; gap: 8px; padding: 12px 18px; border: 0; border-radius: 999px;
      background: var(--tl-colour); color: #fff; font: 600 15px/1.2 system-ui, sans-serif;
      cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
    .launcher:focus-visible, .close:focus-visible { outline: 3px solid #000; outline-offset: 2px; }
    .badge { min-width: 20px; padding: 2px 6px; border-radius: 999px; background: #fff;
      color: #b3261e; font-size: 12px; text-align: center; }
    .panel { position: fixed; right: 20px; bottom: 84px; z-index: 2147483000; display: flex;
      flex-direction: column; width: min(380px, calc(100vw - 40px)); height: min(600px, calc(100vh - 110px));
      background: #fff; border-radius: 12px; overflow: hidden; box-shadow: 0 8px 30px rgba(0,0,0,.3); }
    .badge[hidden], .launcher[hidden] { display: none; }
    /* Closed, the panel keeps its size (only unseen): a frame laid out at zero size in another
       process (a cross-site frame) may stay blank for seconds once shown, under load. */
    .panel:not(.open) { visibility: hidden; pointer-events: none; }
    .head { display: flex; justify-content: space-between; align-items: center; padding: 10px 14px;
      background: var(--tl-colour); color: #fff; font: 600 15px/1.2 system-ui, sans-serif; }
    .close { border: 0; background: none; color: #fff; font: 22px/1 system-ui, sans-serif; cursor: pointer; }
    iframe { flex: 1; width: 100%; border: 0; }`;
  try {
    const css = new CSSStyleSheet();
    css.replaceSync(sheet); // CSSOM: allowed under the page's CSP without 'unsafe-inline'
    root.adoptedStyleSheets = [css];
  } catch {
    const style = document.createElement("style");
    style.textContent = sheet;
    root.append(style);
  }
  const launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "launcher";
  launcher.hidden = true;
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "tierline-panel");
  const launcherText = document.createElement("span");
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  launcher.append(launcherText, badge);
  const panel = document.createElement("div");
  panel.className = "panel";
  panel.id = "tierline-panel";
  panel.setAttribute("role", "dialog");
  const head = document.createElement("div");
  head.className = "head";
  const title = document.createElement("span");
  const close = document.createElement("button");
  close.type = "button";
  close.className = "close";
  close.textContent = "×";
  close.setAttribute("aria-label", "Close the chat");
  head.append(title, close);
  panel.append(head);
  root.append(panel, launcher);

  let frame = null;
  let ready = false;
  let endedToken = "";

  function showBadge() {
    const unread = load().unread || 0;
    badge.hidden = unread === 0;
    badge.textContent = unread ? String(unread) : "";
    launcher.setAttribute(
      "aria-label",
      unread ? `${launcherText.textContent} (${unread} unread)` : launcherText.textContent,
    );
  }

  function ensureFrame() {
    if (frame) return;
    frame = document.createElement("iframe");
    frame.title = title.textContent || "Chat";
    frame.src = frameUrl;
    ready = false;
    panel.append(frame);
  }

  function reloadFrame() {
    if (!frame) return;
    ready = false;
    frame.src = frameUrl;
  }

  function isOpen() {
    return panel.classList.contains("open");
  }

  function markRead() {
    const state = load();
    save({ unread: 0, seen: Math.max(state.seen || 0, state.counted || 0) });
    showBadge();
  }

  function open() {
    ensureFrame();
    panel.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    openFlag(true);
    markRead();
    frame.focus();
  }

  function closePanel() {
    panel.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    openFlag(false);
    launcher.focus();
  }

  function pageInfo() {
    return {
      page: location.href.slice(0, 500),
      title: document.title.slice(0, 300),
      referrer: document.referrer.slice(0, 500),
    };
  }

  const isOver = (status) => Boolean(status) && !["queued", "active"].includes(status);

  const fromFrame = {
    // The frame asks for the chat this visitor holds.
    "tierline:ready": (_data, state) => {
      ready = true;
      frame.contentWindow.postMessage(
        {
          type: "tierline:open",
          token: state.token || "",
          ...(state.identity || {}),
          ...pageInfo(),
          attributes: state.attributes || {},
        },
        base,
      );
    },
    "tierline:state": (data, state) => {
      if (data.token && data.token !== state.token) {
        save({ token: data.token, seen: 0, counted: 0, unread: 0 });
        emit("chat:started", { chat: Number(data.token.split(":")[0]) });
      } else if (!data.token && state.token) {
        save({ token: "", seen: 0, counted: 0, unread: 0 }); // the visitor started afresh
        showBadge();
      }
      if (data.token && isOver(data.status)) ended(data.token, data.status);
    },
    "tierline:message": (data, state) => {
      const seq = Number(data.seq) || 0;
      const counted = Math.max(state.seen || 0, state.counted || 0);
      if (isOpen() && document.visibilityState === "visible") {
        save({ seen: Math.max(counted, seq), counted: Math.max(counted, seq) });
      } else if (seq > counted) {
        const unread = UNREAD_KINDS.has(data.kind);
        save({ counted: seq, unread: (state.unread || 0) + (unread ? 1 : 0) });
        if (unread) emit("unread", { count: load().unread });
      }
      showBadge();
    },
    "tierline:status": (data, state) => {
      if (isOver(data.status)) ended(state.token, data.status);
    },
    "tierline:attributes": (data) => {
      if (data.ok) emit("attributes", { attributes: data.attributes });
      else console.error(`Tierline.set: ${data.error}`);
    },
  };

  function onFrameMessage(data) {
    const handler = fromFrame[data.type];
    if (handler) handler(data, load());
  }

  function ended(token, status) {
    if (!token || endedToken === token || load().ended === token) return;
    endedToken = token;
    save({ ended: token });
    emit("chat:ended", { chat: Number(token.split(":")[0]), status });
  }

  window.addEventListener("message", (e) => {
    if (!frame || e.source !== frame.contentWindow || e.origin !== base) return;
    if (e.data && typeof e.data.type === "string") onFrameMessage(e.data);
  });
  // Another tab of this site started, changed or forgot the chat: show the same one here.
  window.addEventListener("storage", (e) => {
    if (e.key !== storeKey) return;
    const before = JSON.parse(e.oldValue || "{}").token || "";
    const after = JSON.parse(e.newValue || "{}").token || "";
    if (before !== after) reloadFrame();
    showBadge();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && isOpen()) markRead();
  });
  launcher.addEventListener("click", () => (isOpen() ? closePanel() : open()));
  close.addEventListener("click", closePanel);
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closePanel();
  });

  /* ---- the API ---- */
  window.Tierline = {
    version: 1,
    open,
    close: closePanel,
    /** Who the visitor is: name and email fill the start form; any other field is an attribute. */
    identify(person) {
      const { name, email, rest } = checkIdentity(person);
      checkAttributes("identify", rest);
      const state = load();
      const attributes = merged(state.attributes || {}, rest, "identify");
      const identity = { ...(state.identity || {}) };
      if (name !== undefined) identity.name = name.trim();
      if (email !== undefined) identity.email = email;
      save({ identity, attributes });
      if (Object.keys(rest).length) sendAttributes(rest);
    },
    /** Custom attributes shown to agents with the chat (null removes one). */
    set(attributes) {
      checkAttributes("set", attributes);
      save({ attributes: merged(load().attributes || {}, attributes, "set") });
      sendAttributes(attributes);
    },
    on(name, fn) {
      if (typeof fn !== "function") fail("on", "give a function.");
      listeners.set(name, [...(listeners.get(name) || []), fn]);
    },
    off(name, fn) {
      listeners.set(
        name,
        (listeners.get(name) || []).filter((f) => f !== fn),
      );
    },
  };

  function sendAttributes(attributes) {
    // Before the chat starts they go with the start form; after, straight to the chat.
    if (frame && ready && load().token) {
      frame.contentWindow.postMessage({ type: "tierline:attributes", attributes }, base);
    }
  }

  /* ---- start: the site's look (which also checks this page may use the key) ---- */
  fetch(`${base}/chat/w/${encodeURIComponent(key)}/config`, { credentials: "omit" })
    .then(async (response) => {
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error?.message || `HTTP ${response.status}`);
      return body;
    })
    .then((config) => {
      host.style.setProperty("--tl-colour", config.colour);
      launcherText.textContent = config.launcher_text;
      title.textContent = config.title;
      panel.setAttribute("aria-label", config.title);
      launcher.hidden = false;
      document.body.append(host);
      showBadge();
      if (openFlag()) open();
      else if (load().token) ensureFrame(); // hidden: keeps the unread count live
      window.dispatchEvent(new CustomEvent("tierline:ready"));
    })
    .catch((error) => console.error(`Tierline widget: ${error.message}`));
})();
