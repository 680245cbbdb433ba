/* The "My chats" card: the chats this agent holds, with unread counts. */
import { bdi, el } from "../chat/dom.js";
import { chats, ensureChat, isOnScreen, view } from "./state.js";

const chatList = document.getElementById("chat-list");
const chatsCount = document.getElementById("chats-count");

/** The server's list of held chats: the rows say which, and how many messages are unread. */
export function renderChatList(rows) {
  const held = new Set(rows.map((r) => r.chat));
  for (const row of rows) {
    const c = ensureChat(row.chat);
    c.held = true;
    // The chat on screen is read: the server's count may predate our last "read".
    c.unread = isOnScreen(c) ? 0 : row.unread;
    c.summary = row;
  }
  for (const c of chats.values()) if (!held.has(c.id)) c.held = false;
  drawChatList();
}

export function drawChatList() {
  const held = [...chats.values()].filter((c) => c.held);
  chatsCount.textContent = held.length;
  if (!held.length) {
    chatList.replaceChildren(el("li", { className: "empty", textContent: "You hold no chats." }));
    return;
  }
  chatList.replaceChildren(...held.map(chatItem));
}

function chatItem(c) {
  const name = c.info?.visitor || c.summary?.visitor || `Chat ${c.id}`;
  const topic = c.info?.topic || c.summary?.topic || "";
  const badge = el("span", { className: "badge", textContent: c.unread ? String(c.unread) : "" });
  badge.hidden = !c.unread;
  const className = `chat-item${c.id === view.activeChat ? " active" : ""}`;
  return el("li", { className, dataset: { chat: c.id, unread: c.unread || 0 } }, [
    el("span", {}, [
      el("strong", {}, [bdi(name)]),
      el("span", { className: "muted small" }, [" · ", bdi(topic)]),
    ]),
    badge,
  ]);
}

/** Call `open(chatId)` when a held chat is clicked. */
export function onSelect(open) {
  chatList.addEventListener("click", (event) => {
    const item = event.target.closest(".chat-item");
    if (item) open(Number(item.dataset.chat));
  });
}
