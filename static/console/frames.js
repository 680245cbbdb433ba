/* What the console does with each frame the server sends. A chat's frames that say where it
   stands (chat.info, chat.assigned, taken, offer, offer.closed, chat.status, chat.removed) go
   through its state machine (chatstate.js, drawn by pane.js). */
import { FROM_SERVER, TO_SERVER } from "../chat/protocol.js";
import { chatKey, clear, offerKey, raise } from "./alerts.js";
import { drawChatList, renderChatList } from "./chats.js";
import { showComposerError } from "./composer.js";
import { applyConsult, consultRefused, showConsultOptions } from "./consult.js";
import { closeDialog, dialogError, showOptions } from "./escalate.js";
import {
  applyHandoverInfo,
  handoverRefused,
  onHandover,
  onHandoverOffer,
  onHandoverOfferClosed,
  setHandovers,
} from "./handover.js";
import { send } from "./link.js";
import { addOffer, dropOffer, offerRefused, renderOffers, setOffers } from "./offers.js";
import { addMessage, applyInfo, moveTo, showCommandResult } from "./pane.js";
import { openChat, seen, subscribe } from "./panes.js";
import { showPresence } from "./presence.js";
import { addQueueItem, enableTakeButtons, removeQueueItem, setQueue } from "./queue.js";
import { chats, claimed, ensureChat, isHeld, isOnScreen, outbox, view } from "./state.js";
import { applyTags } from "./tags.js";
import { showToast } from "./toast.js";

const refreshQueue = () => send({ type: TO_SERVER.QUEUE });
const SUBSCRIBE_REF = "subscribe-"; // the `ref` of a subscribe frame: "subscribe-<chat id>"

/** The chats the agent holds, then those it joined to take over (`role` receiver), as listed
    by the server. The list was read after every change this socket sent before it, so a listed
    chat is held (or joined) now. */
function heldChats(rows) {
  for (const row of rows) {
    const frame =
      row.role === "receiver"
        ? { type: FROM_SERVER.HANDOVER, role: "receiver", status: "joined" }
        : { type: FROM_SERVER.CHAT_ASSIGNED };
    moveTo(ensureChat(row.chat), frame);
  }
  renderChatList(rows);
}

function onHello(f) {
  showPresence(f.agent.presence);
  setQueue(f.queue);
  heldChats(f.chats);
  setOffers(f.offers);
  setHandovers(f.handovers);
}

// Asked for ("queue"), or after a resync: every list.
function onQueue(f) {
  setQueue(f.items);
  heldChats(f.chats);
  setOffers(f.offers);
  setHandovers(f.handovers);
}

function onOffer(f) {
  addOffer(f);
  renderOffers();
  const c = chats.get(f.chat);
  if (c) moveTo(c, f);
  raise(offerKey(f.offer), {
    title: "A chat is offered to you",
    body: `${f.visitor} · ${f.topic}`,
  });
}

function onOfferClosed(f) {
  dropOffer(f.offer);
  clear(offerKey(f.offer));
  const c = chats.get(f.chat);
  if (c) moveTo(c, f);
}

function onReplayDone(f) {
  if (f.more) {
    send({ type: TO_SERVER.RESUME, chat: f.chat, since: f.last });
    return;
  }
  const c = chats.get(f.chat);
  if (c && isOnScreen(c)) {
    seen(c);
    drawChatList();
  }
}

/** The agent's Take or Accept worked: the chat comes on screen (`chat.assigned` follows). */
function onTaken(f) {
  if (f.offer) dropOffer(f.offer);
  moveTo(ensureChat(f.chat), f);
  openChat(f.chat);
}

/** A chat is ours now: it opens if no pane is open; if the agent did not ask for it, alert. */
function onAssigned(f) {
  const c = ensureChat(f.chat);
  const asked = claimed.delete(c.id);
  moveTo(c, f);
  refreshQueue(); // the held chats' list: the visitor's name, unread counts
  if (c.pane && !asked)
    subscribe(c, c.lastSeq); // a fresh header, and what we may have missed
  else if (!c.pane && view.activeChat === null) openChat(c.id);
  drawChatList();
  if (asked || isOnScreen(c)) return;
  raise(chatKey(c.id), { title: "New chat", body: "A chat was given to you.", chat: c.id });
}

function onRemoved(f) {
  const c = ensureChat(f.chat);
  moveTo(c, f);
  c.unread = 0;
  if (!c.pane) clear(chatKey(c.id));
  drawChatList();
}

function onStatus(f) {
  const c = ensureChat(f.chat);
  moveTo(c, f);
  drawChatList();
}

function onTyping(f) {
  const c = chats.get(f.chat);
  if (c?.pane && f.who === "visitor") c.typing.show(f);
}

function onOptions(f) {
  const c = chats.get(f.chat);
  if (c?.pane) showOptions(c.pane, f);
}

function onEscalated(f) {
  const c = chats.get(f.chat);
  if (f.client_id) outbox.delete(f.client_id);
  if (!c?.pane) return;
  closeDialog(c.pane);
  showCommandResult(c, f.text);
}

function onCommandResult(f) {
  if (f.client_id) outbox.delete(f.client_id);
  const c = chats.get(f.chat);
  if (c?.pane) showCommandResult(c, f.text);
  else showToast(f.text);
}

/** A pane whose chat we may no longer open (it left our queues while we were away). */
function subscribeRefused(f) {
  if (typeof f.ref !== "string" || !f.ref.startsWith(SUBSCRIBE_REF)) return false;
  const c = chats.get(Number(f.ref.slice(SUBSCRIBE_REF.length)));
  if (c) moveTo(c, { type: FROM_SERVER.CHAT_REMOVED, chat: c.id, reason: "no_longer_visible" });
  return true;
}

/** An error goes where the agent is looking: the dialog, the pane's composer, or a toast. */
function onError(f) {
  if (offerRefused(f) || handoverRefused(f) || subscribeRefused(f) || consultRefused(f)) return;
  if (outbox.retryIfRateLimited(f, send)) return;
  const frame = f.ref && outbox.get(f.ref);
  if (frame) outbox.delete(f.ref);
  const c = (frame && chats.get(frame.chat)) || chats.get(view.activeChat);
  if (!c?.pane) showToast(f.message);
  else if (!dialogError(c.pane, f.message)) showComposerError(c.pane, f.message);
  enableTakeButtons();
}

function onTags(f) {
  const c = ensureChat(f.chat);
  applyTags(c, f, isHeld(c));
}

export const handlers = new Map([
  [FROM_SERVER.HELLO, onHello],
  [FROM_SERVER.QUEUE, onQueue],
  [FROM_SERVER.QUEUE_ITEM_ADDED, (f) => addQueueItem(f.item)],
  [FROM_SERVER.QUEUE_ITEM_REMOVED, (f) => removeQueueItem(f.chat)],
  [FROM_SERVER.OFFER, onOffer],
  [FROM_SERVER.OFFER_CLOSED, onOfferClosed],
  [FROM_SERVER.PRESENCE, (f) => showPresence(f.presence, f.reason)],
  [
    FROM_SERVER.CHAT_INFO,
    (f) => {
      applyInfo(f);
      applyHandoverInfo(f);
    },
  ],
  [FROM_SERVER.HANDOVER_OFFER, onHandoverOffer],
  [FROM_SERVER.HANDOVER_OFFER_CLOSED, onHandoverOfferClosed],
  [FROM_SERVER.HANDOVER, onHandover],
  [FROM_SERVER.MESSAGE, addMessage],
  [FROM_SERVER.TYPING, onTyping],
  [FROM_SERVER.REPLAY_DONE, onReplayDone],
  [FROM_SERVER.TAKEN, onTaken],
  [FROM_SERVER.CHAT_ASSIGNED, onAssigned],
  [FROM_SERVER.CHAT_REMOVED, onRemoved],
  [FROM_SERVER.ESCALATION_OPTIONS, onOptions],
  [FROM_SERVER.ESCALATED, onEscalated],
  [FROM_SERVER.COMMAND_RESULT, onCommandResult],
  [FROM_SERVER.CHAT_TAGS, onTags],
  [FROM_SERVER.CONSULT, applyConsult],
  [FROM_SERVER.CONSULT_OPTIONS, showConsultOptions],
  [FROM_SERVER.CHAT_STATUS, onStatus],
  [FROM_SERVER.ACK, (f) => outbox.delete(f.client_id)],
  [FROM_SERVER.ERROR, onError],
]);
