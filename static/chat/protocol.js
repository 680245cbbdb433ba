/* The websocket protocol (version 3, docs/protocol.md) that the visitor page and the console
   speak: frame types, close codes, error codes and addresses. The server's side: the consumers in chat/consumers (frame checks and
   close codes in their protocol module) and the event payloads in chat/events.py. */

/** Frame types the server sends. */
export const FROM_SERVER = Object.freeze({
  HELLO: "hello",
  MESSAGE: "message",
  REPLAY_DONE: "replay.done",
  ACK: "ack",
  ERROR: "error",
  CHAT_STATUS: "chat.status",
  QUEUE_POSITION: "queue.position", // to the visitor
  TYPING: "typing",
  QUEUE: "queue", // the rest to the console
  QUEUE_ITEM_ADDED: "queue.item.added",
  QUEUE_ITEM_REMOVED: "queue.item.removed",
  OFFER: "offer",
  OFFER_CLOSED: "offer.closed",
  PRESENCE: "presence",
  CHAT_INFO: "chat.info",
  TAKEN: "taken",
  CHAT_ASSIGNED: "chat.assigned",
  CHAT_REMOVED: "chat.removed",
  ESCALATION_OPTIONS: "escalation.options",
  ESCALATED: "escalated",
  COMMAND_RESULT: "command.result",
  CHAT_TAGS: "chat.tags",
  CONSULT: "consult",
  CONSULT_OPTIONS: "consult.options",
  HANDOVER_OFFER: "handover.offer",
  HANDOVER_OFFER_CLOSED: "handover.offer.closed",
  HANDOVER: "handover",
});

/** Frame types the pages send. */
export const TO_SERVER = Object.freeze({
  MESSAGE: "message",
  RESUME: "resume",
  PING: "ping",
  END: "end",
  SUBSCRIBE: "subscribe", // the rest from the console
  READ: "read",
  QUEUE: "queue",
  TAKE: "take",
  PRESENCE: "presence",
  OFFER_ACCEPT: "offer.accept",
  OFFER_DECLINE: "offer.decline",
  ESCALATION_OPTIONS: "escalation.options",
  ESCALATE: "escalate",
  TYPING: "typing",
  TAGS: "tags",
  CONSULT_OPTIONS: "consult.options",
  CONSULT_OPEN: "consult.open",
  CONSULT_REPLY: "consult.reply",
  CONSULT_CLOSE: "consult.close",
  HANDOVER_REQUEST: "handover.request",
  HANDOVER_CANCEL: "handover.cancel",
  HANDOVER_ACCEPT: "handover.accept",
  HANDOVER_DECLINE: "handover.decline",
  HANDOVER_TAKE: "handover.take",
});

/** Websocket close codes the server uses. */
export const CLOSE = Object.freeze({
  FORBIDDEN: 4403, // no or bad credentials: reconnecting cannot help
  FLOODING: 4429, // too many frames or connections: reconnect after the backoff
});

/** `code` values of error frames that the pages act on. */
export const ERROR = Object.freeze({
  RATE_LIMITED: "rate_limited",
  NOT_ONLINE: "not_online",
  AT_CAPACITY: "at_capacity",
});

/** "Still here": a console or visitor silent for longer is taken as gone by the server. */
export const PING_INTERVAL_MS = 20000;

/** The protocol version these pages speak, said in every socket's address. In version 3 a sent
    message's acknowledgement is the message itself, on the sender's own stream. */
export const PROTOCOL_VERSION = 3;

/** The address of a websocket path on this page's host, ws: or wss: as the page, saying which
    protocol version the page speaks. */
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const joiner = path.includes("?") ? "&" : "?";
  return `${scheme}://${location.host}${path}${joiner}v=${PROTOCOL_VERSION}`;
}

/** An id for a frame, so that the server can drop a repeat and acknowledge it. */
export function newClientId() {
  if (window.crypto?.randomUUID) return crypto.randomUUID();
  return `c${Date.now()}${Math.random().toString(16).slice(2)}`;
}

/** Call the handler of the frame's type; frames of other types are ignored. */
export function dispatch(handlers, frame) {
  const handle = handlers.get(frame.type);
  if (handle) handle(frame);
}
