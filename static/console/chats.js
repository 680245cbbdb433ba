/* The "My chats" card: the chats this agent holds, with unread counts, and those it joined to
   take over (marked "joined"). */
import { bdi, clickOnKeys, el, redrawKeepingFocus } from "../chat/dom.js";
import { chatKey, clear, needsAttention } from "./alerts.js";
import { chats, ensureChat, isHeld, isJoined, isOnScreen, view } from "./state.js";

const chatList = document.getElementById("chat-list");
const chatsCount = document.getElementById("chats-count");

const isMine = (c) => isHeld(c) || isJoined(c);

/** The server's list of held and joined chats (their states already moved there): the rows
    say which, and how many messages are unread. */
export function renderChatList(rows) {
  const listed = new Set(rows.map((row) => row.chat));
  for (const c of chats.values()) {
    // Lost while this tab was away (a reconnect): an open pane learns how on its subscribe.
    if (!isMine(c) || listed.has(c.id) || c.pane) continue;
    chats.delete(c.id);
    clear(chatKey(c.id));
  }
  for (const row of rows) {
    const c = ensureChat(row.chat);
    // The chat on screen is read: the server's count may predate our last "read".
    c.unread = isOnScreen(c) ? 0 : row.unread;
    c.summary = row;
  }
  drawChatList();
}

export function drawChatList() {
  const held = [...chats.values()].filter(isMine);
  chatsCount.textContent = held.length;
  if (!held.length) {
    chatList.replaceChildren(el("li", { className: "empty", textContent: "You hold no chats." }));
    return;
  }
  redrawKeepingFocus(chatList, () => chatList.replaceChildren(...held.map(chatItem)));
}

function chatItem(c) {
  const name = c.info?.visitor || c.summary?.visitor || `Chat ${c.id}`;
  const topic = c.info?.topic || c.summary?.topic || "";
  const badge = el("span", { className: "badge", textContent: c.unread ? String(c.unread) : "" });
  badge.hidden = !c.unread;
  const active = c.id === view.activeChat ? " active" : "";
  const attention = needsAttention(c.id) ? " attention" : "";
  const item = el("li", {
    className: `chat-item${active}${attention}`,
    dataset: { chat: c.id, unread: c.unread || 0 },
    tabIndex: 0,
  });
  item.setAttribute("role", "button");
  item.append(
    el("span", {}, [
      el("strong", {}, [bdi(name)]),
      el("span", { className: "muted small" }, [" · ", bdi(topic)]),
      ...(isJoined(c)
        ? [el("span", { className: "chat-role small", textContent: " joined" })]
        : []),
    ]),
    badge,
  );
  return item;
}

/** Call `open(chatId)` when a listed chat is clicked (or chosen with Enter or Space). */
export function onSelect(open) {
  chatList.addEventListener("click", (event) => {
    const item = event.target.closest(".chat-item");
    if (item) open(Number(item.dataset.chat));
  });
  clickOnKeys(chatList, ".chat-item");
}
