/* What the console does with each frame the server sends. */
import { FROM_SERVER, TO_SERVER } from "../chat/protocol.js";
import { drawChatList, renderChatList } from "./chats.js";
import { showComposerError } from "./composer.js";
import { closeDialog, dialogError, showOptions } from "./escalate.js";
import { send } from "./link.js";
import { addOffer, dropOffer, offerRefused, renderOffers, setOffers } from "./offers.js";
import {
  addMessage,
  applyInfo,
  isHandedOver,
  setPaneStatus,
  showCommandResult,
  showHandedOver,
} from "./pane.js";
import { openChat } from "./panes.js";
import { addQueueItem, enableTakeButtons, removeQueueItem, setQueue } from "./queue.js";
import { chats, ensureChat, markRead, outbox, showPresence, view } from "./state.js";
import { showToast } from "./toast.js";

const refreshQueue = () => send({ type: TO_SERVER.QUEUE });

function onHello(f) {
  showPresence(f.agent.presence);
  setQueue(f.queue);
  renderChatList(f.chats);
  setOffers(f.offers);
}

// Asked for ("queue"), or after a resync: every list.
function onQueue(f) {
  setQueue(f.items);
  renderChatList(f.chats);
  setOffers(f.offers);
}

function onOffer(f) {
  addOffer(f);
  renderOffers();
}

function onReplayDone(f) {
  if (f.more) {
    send({ type: TO_SERVER.RESUME, chat: f.chat, since: f.last });
    return;
  }
  const c = chats.get(f.chat);
  if (c && view.activeChat === c.id) {
    markRead(c);
    drawChatList();
  }
}

function onTaken(f) {
  if (f.offer) dropOffer(f.offer);
  openChat(f.chat);
  refreshQueue();
}

function onAssigned(f) {
  const c = ensureChat(f.chat);
  c.held = true;
  refreshQueue();
  if (c.pane) send({ type: TO_SERVER.SUBSCRIBE, chat: c.id, since: c.lastSeq });
  else if (view.activeChat === null) openChat(c.id);
}

function onRemoved(f) {
  const c = ensureChat(f.chat);
  c.held = false;
  const status = f.handed_over_to ? "queued" : c.pane ? c.pane.dataset.status : "ended";
  setPaneStatus(c, status, false);
  if (c.pane && f.handed_over_to) showHandedOver(c, f.handed_over_to);
  refreshQueue();
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

function onStatus(f) {
  const c = ensureChat(f.chat);
  if (isHandedOver(c) && !c.held) return;
  setPaneStatus(c, f.status, c.held && f.status === "active");
}

/** An error goes where the agent is looking: the dialog, the pane's composer, or a toast. */
function onError(f) {
  if (offerRefused(f)) return;
  if (outbox.retryIfRateLimited(f, send)) return;
  const frame = f.ref && outbox.get(f.ref);
  if (frame) outbox.delete(f.ref);
  const c = (frame && chats.get(frame.chat)) || chats.get(view.activeChat);
  if (!c?.pane) showToast(f.message);
  else if (!dialogError(c.pane, f.message)) showComposerError(c.pane, f.message);
  enableTakeButtons();
}

export const handlers = new Map([
  [FROM_SERVER.HELLO, onHello],
  [FROM_SERVER.QUEUE, onQueue],
  [FROM_SERVER.QUEUE_ITEM_ADDED, (f) => addQueueItem(f.item)],
  [FROM_SERVER.QUEUE_ITEM_REMOVED, (f) => removeQueueItem(f.chat)],
  [FROM_SERVER.OFFER, onOffer],
  [FROM_SERVER.OFFER_CLOSED, (f) => dropOffer(f.offer)],
  [FROM_SERVER.PRESENCE, (f) => showPresence(f.presence)],
  [FROM_SERVER.CHAT_INFO, applyInfo],
  [FROM_SERVER.MESSAGE, addMessage],
  [FROM_SERVER.REPLAY_DONE, onReplayDone],
  [FROM_SERVER.TAKEN, onTaken],
  [FROM_SERVER.CHAT_ASSIGNED, onAssigned],
  [FROM_SERVER.CHAT_REMOVED, onRemoved],
  [FROM_SERVER.ESCALATION_OPTIONS, onOptions],
  [FROM_SERVER.ESCALATED, onEscalated],
  [FROM_SERVER.COMMAND_RESULT, onCommandResult],
  [FROM_SERVER.CHAT_STATUS, onStatus],
  [FROM_SERVER.ACK, (f) => outbox.delete(f.client_id)],
  [FROM_SERVER.ERROR, onError],
]);
