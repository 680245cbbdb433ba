/* What this console tab knows: the chats it has seen, the one on screen, unacknowledged frames. */
import { TO_SERVER } from "../chat/protocol.js";
import { Outbox } from "../chat/socket.js";
import { send } from "./link.js";

const root = document.getElementById("console");
export const agentId = Number(root.dataset.agent);
export const maxChars = Number(root.dataset.maxChars);

/** chat id -> {id, info, summary, lastSeq, unread, pane, tab, held} */
export const chats = new Map();
export const outbox = new Outbox();
export const view = { activeChat: null }; // the id of the chat on screen

export function ensureChat(id) {
  if (!chats.has(id)) {
    chats.set(id, { id, info: null, lastSeq: 0, unread: 0, pane: null, tab: null, held: false });
  }
  return chats.get(id);
}

/** The agent is looking at this chat now. */
export function isOnScreen(c) {
  return view.activeChat === c.id && !document.hidden;
}

export function markRead(c) {
  if (c.held && c.lastSeq) send({ type: TO_SERVER.READ, chat: c.id, seq: c.lastSeq });
  c.unread = 0;
}

export function showPresence(presence) {
  document.getElementById("presence").value = presence;
  root.dataset.presence = presence;
}
