/* The workspace: a tab and a pane for each chat opened, one of them on screen. */
import { el } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { drawChatList } from "./chats.js";
import { send } from "./link.js";
import { createPane } from "./pane.js";
import { chats, ensureChat, markRead, view } from "./state.js";

const tabs = document.getElementById("tabs");
const panes = document.getElementById("panes");
const emptyPane = document.getElementById("empty-pane");

/** Put the chat on screen, opening its pane (and subscribing to it) the first time. */
export function openChat(id) {
  const c = ensureChat(id);
  if (!c.pane) {
    addPane(c);
    send({ type: TO_SERVER.SUBSCRIBE, chat: id, since: 0 });
  }
  view.activeChat = id;
  emptyPane.hidden = true;
  for (const other of chats.values()) {
    if (other.pane) other.pane.hidden = other.id !== id;
    other.tab?.classList.toggle("active", other.id === id);
  }
  markRead(c);
  drawChatList();
}

function addPane(c) {
  c.pane = createPane(c);
  c.tab = el("button", { type: "button", className: "tab", dataset: { chat: c.id } }, [
    el("bdi", { className: "tab-name", textContent: `Chat ${c.id}` }),
    el("span", { className: "tab-close", textContent: "×", title: "Close tab" }),
  ]);
  c.tab.addEventListener("click", (event) => {
    if (event.target.classList.contains("tab-close")) closeTab(c.id);
    else openChat(c.id);
  });
  tabs.append(c.tab);
  panes.append(c.pane);
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
  if (view.activeChat !== id) return;
  view.activeChat = null;
  const next = [...chats.values()].find((o) => o.pane);
  if (next) openChat(next.id);
  else emptyPane.hidden = false;
}
