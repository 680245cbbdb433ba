/* What this console tab knows: the chats it has seen, the one on screen, unacknowledged frames. */
import { TO_SERVER } from "../chat/protocol.js";
import { Outbox } from "../chat/socket.js";
import { initial } from "./chatstate.js";
import { send } from "./link.js";

const root = document.getElementById("console");
export const agentId = Number(root.dataset.agent);
export const maxChars = Number(root.dataset.maxChars);
export const agentName = root.dataset.agentName;
export const repliesUrl = root.dataset.replies;
/** Where a chat's files are sent: the API's address for chat 0, for any chat. */
export const attachUrl = (chatId) => root.dataset.attachUrl.replace("/0/", `/${chatId}/`);

/** chat id -> {id, info, summary, state, lastSeq, unread, pane, tab}; `state` is the chat's
    place in chatstate.js's machine. */
export const chats = new Map();
export const outbox = new Outbox();
export const view = { activeChat: null }; // the id of the chat on screen
/** Chats this tab asked for (Take, Accept): their assignment is no news to alert about. */
export const claimed = new Set();

export function ensureChat(id) {
  if (!chats.has(id)) {
    chats.set(id, { id, info: null, state: initial, lastSeq: 0, unread: 0, pane: null, tab: null });
  }
  return chats.get(id);
}

/** This agent holds the chat now (it may write to it). */
export function isHeld(c) {
  return c.state.name === "held";
}

/** The agent joined this chat to take it over (warm hand-over): listed with the held ones. */
export function isJoined(c) {
  return c.state.name === "joined";
}

/** The agent is looking at this chat now. */
export function isOnScreen(c) {
  return view.activeChat === c.id && !document.hidden;
}

export function markRead(c) {
  if (isHeld(c) && c.lastSeq) send({ type: TO_SERVER.READ, chat: c.id, seq: c.lastSeq });
  c.unread = 0;
}
