/* Building the pages' nodes from data. Text goes in as textContent, never as HTML, and text a
   user typed (names, topics, notes, messages) is isolated for bidi: a right-to-left override or
   an RTL name inside it cannot reorder the text around it. */

/** An element with properties (`dataset` merged) and children (nodes or strings). */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

/** User text inside a <bdi>, isolated from the text around it. */
export function bdi(text, props = {}) {
  return el("bdi", { ...props, textContent: text });
}

/** Enter sends the form, Shift+Enter adds a line. */
export function submitOnEnter(textarea, form) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey) return;
    event.preventDefault();
    form.requestSubmit();
  });
}

/** Enter or Space on a focused element matching `selector` inside `root` works as a click (for
    list entries that act as buttons: role=button, tabindex=0). */
export function clickOnKeys(root, selector) {
  root.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    if (!event.target.matches(selector)) return;
    event.preventDefault();
    event.target.click();
  });
}

/** Redraw `list` with `draw()`; the keyboard focus, if it was on an entry (an element inside a
    `[data-chat]` item), goes back to the same entry of the same chat. */
export function redrawKeepingFocus(list, draw) {
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  const chat = focused?.closest("[data-chat]")?.dataset.chat;
  const role = focused?.classList[0];
  draw();
  if (!chat || !role) return;
  const item = list.querySelector(`[data-chat="${chat}"]`);
  const target = item?.classList.contains(role) ? item : item?.querySelector(`.${role}`);
  target?.focus();
}
