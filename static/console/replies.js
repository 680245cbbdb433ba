/* Saved replies in a reply box: typing #shortcut lists the agent's replies that match (its own,
   its groups' and the global ones); the arrow keys move, Enter or Tab or a click puts the reply's
   text in place of #shortcut with {visitor} and {agent} filled in, Escape closes the list. Each
   insertion is counted on the server. */
import { el } from "../chat/dom.js";
import { agentName, repliesUrl } from "./state.js";

const FRESH_MS = 60_000; // the list is fetched again after a minute (edits elsewhere show up)
const SHOWN = 8;
let loaded = { at: 0, replies: [] };
let pending = null;

async function replies() {
  if (Date.now() - loaded.at < FRESH_MS) return loaded.replies;
  pending ??= fetch(repliesUrl, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  })
    .then((response) => (response.ok ? response.json() : { replies: loaded.replies }))
    .then((body) => {
      loaded = { at: Date.now(), replies: body.replies };
      return body.replies;
    })
    .catch(() => loaded.replies)
    .finally(() => {
      pending = null;
    });
  return pending;
}

export function csrfToken() {
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value ?? "";
}

function countUse(reply) {
  fetch(reply.used_url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
  }).catch(() => {}); // a lost count is not worth bothering the agent about
}

/** The text with {visitor} and {agent} filled in ({{ and }} are literal braces). */
export function fill(text, values) {
  return text.replace(/\{\{|\}\}|\{(\w+)\}/g, (match, name) => {
    if (match === "{{") return "{";
    if (match === "}}") return "}";
    return name in values ? values[name] : match;
  });
}

/** The "#word" being typed just before the caret, if any. */
function typedShortcut(textarea) {
  const before = textarea.value.slice(0, textarea.selectionStart);
  const found = /(^|\s)#([\w-]*)$/.exec(before);
  return found
    ? { query: found[2].toLowerCase(), start: before.length - found[2].length - 1 }
    : null;
}

export function wireReplyPicker(pane, c, textarea) {
  const list = pane.querySelector(".reply-picker");
  list.id = `replies-${c.id}`;
  textarea.setAttribute("aria-controls", list.id);
  let matches = [];
  let chosen = 0;

  const close = () => {
    list.hidden = true;
    matches = [];
    textarea.setAttribute("aria-expanded", "false");
    textarea.removeAttribute("aria-activedescendant");
  };
  const draw = () => {
    list.replaceChildren(
      ...matches.map((reply, i) =>
        el(
          "li",
          {
            id: `${list.id}-${i}`,
            role: "option",
            ariaSelected: String(i === chosen),
            dataset: { shortcut: reply.shortcut },
          },
          [
            el("code", { textContent: `#${reply.shortcut}` }),
            el("bdi", { textContent: reply.title }),
            " ",
            el("span", { className: "muted small", textContent: reply.group ?? reply.scope }),
          ],
        ),
      ),
    );
    list.hidden = matches.length === 0;
    textarea.setAttribute("aria-expanded", String(!list.hidden));
    if (!list.hidden) textarea.setAttribute("aria-activedescendant", `${list.id}-${chosen}`);
  };
  let inserting = false;
  const insert = (reply) => {
    // Where the #shortcut is now (the caret may have moved since the list opened).
    const typed = typedShortcut(textarea);
    close();
    if (!typed || !reply) return;
    const text = fill(reply.text, { visitor: c.info?.visitor ?? "", agent: agentName });
    textarea.setRangeText(text, typed.start, textarea.selectionStart, "end");
    inserting = true; // the reply's own text opens no list, even if it ends in #word
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
    inserting = false;
    textarea.focus();
    countUse(reply);
  };

  const update = async () => {
    const typed = inserting ? null : typedShortcut(textarea);
    if (!typed) return close();
    const all = await replies();
    if (typedShortcut(textarea)?.query !== typed.query) return; // typed on while it loaded
    matches = all.filter((r) => r.shortcut.toLowerCase().startsWith(typed.query)).slice(0, SHOWN);
    chosen = 0;
    draw();
  };
  textarea.addEventListener("input", update);
  // The caret moved (a click, Home, End, the side arrows): the list follows what is before it.
  textarea.addEventListener("click", update);
  textarea.addEventListener("keyup", (event) => {
    if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) update();
  });
  const move = (step) => {
    chosen = (chosen + step + matches.length) % matches.length;
    draw();
  };
  const keys = {
    ArrowDown: () => move(1),
    ArrowUp: () => move(-1),
    Enter: () => insert(matches[chosen]),
    Tab: () => insert(matches[chosen]),
    Escape: close,
  };
  textarea.addEventListener("keydown", (event) => {
    const action = keys[event.key];
    // Shift+Enter is a new line and an IME's Enter ends its composition, as without the list.
    if (list.hidden || !action || event.isComposing || event.shiftKey) return;
    event.preventDefault();
    event.stopImmediatePropagation(); // Enter picks the reply; it does not send the message
    action();
  });
  textarea.addEventListener("blur", close); // a click on the list keeps the focus (below)
  list.addEventListener("mousedown", (event) => {
    const item = event.target.closest("li[role=option]");
    if (!item) return;
    event.preventDefault(); // keep the focus (and the caret) in the reply box
    insert(matches[Number(item.id.split("-").pop())]);
  });
}
