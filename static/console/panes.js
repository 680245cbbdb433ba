/* The workspace: a tab and a pane for each chat opened, one of them on screen. */
import { el } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { chatKey, clear, needsAttention } from "./alerts.js";
import { drawChatList } from "./chats.js";
import { send } from "./link.js";
import { createPane, drawState } from "./pane.js";
import { chats, ensureChat, markRead, view } from "./state.js";

const tabs = document.getElementById("tabs");
const panes = document.getElementById("panes");
const emptyPane = document.getElementById("empty-pane");

/** Put the chat on screen, opening its pane (and subscribing to it) the first time. */
export function openChat(id) {
  const c = ensureChat(id);
  if (!c.pane) {
    addPane(c);
    subscribe(c, 0);
  }
  view.activeChat = id;
  emptyPane.hidden = true;
  for (const other of chats.values()) {
    if (other.pane) other.pane.hidden = other.id !== id;
    other.tab?.classList.toggle("active", other.id === id);
    other.tab?.querySelector(".tab-open").setAttribute("aria-current", other.id === id);
  }
  if (!document.hidden) seen(c);
  drawChatList();
}

/** Follow the chat from `since`; a refusal (the chat left our queues) names the chat in `ref`. */
export function subscribe(c, since) {
  send({ type: TO_SERVER.SUBSCRIBE, chat: c.id, since, ref: `subscribe-${c.id}` });
}

/** The agent is looking at the chat: read, and no longer an alert. */
export function seen(c) {
  markRead(c);
  clear(chatKey(c.id));
}

function addPane(c) {
  c.pane = createPane(c, closeTab);
  const open = el("button", { type: "button", className: "tab-open" }, [
    el("bdi", { className: "tab-name", textContent: `Chat ${c.id}` }),
  ]);
  const close = el("button", {
    type: "button",
    className: "tab-close",
    textContent: "×",
    title: "Close this pane",
  });
  close.setAttribute("aria-label", "Close this pane");
  open.addEventListener("click", () => openChat(c.id));
  close.addEventListener("click", () => closeTab(c.id));
  c.tab = el("span", { className: "tab chat-tab", dataset: { chat: c.id } }, [open, close]);
  tabs.append(c.tab);
  panes.append(c.pane);
  drawState(c);
}

/** Close the chat's tab; the next open one comes on screen. */
function closeTab(id) {
  const c = chats.get(id);
  if (!c?.pane) return;
  c.pane.remove();
  c.tab.remove();
  c.pane = null;
  c.tab = null;
  c.lastSeq = 0;
  c.typing?.hide();
  clear(chatKey(id));
  if (view.activeChat !== id) return;
  view.activeChat = null;
  const next = [...chats.values()].find((o) => o.pane);
  if (next) openChat(next.id);
  else emptyPane.hidden = false;
}

/** Mark the tabs of chats with something new. */
export function markTabs() {
  for (const c of chats.values()) c.tab?.classList.toggle("attention", needsAttention(c.id));
}
