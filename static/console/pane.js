/* One chat's pane: title and visitor details, hand-over, timeline, transcript, typing line, and
   the banner and controls of the chat's state (chatstate.js): the composer, Internal note, End
   and Escalate exist only while the agent holds the chat. A chat that ended or left stays
   readable, its banner saying what happened, until the agent closes the pane. */
import { bdi, el } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { appendMessage, followImages, formatTime } from "../chat/transcript.js";
import { TypingIndicator } from "../chat/typing.js";
import { chatKey, raise } from "./alerts.js";
import { drawChatList } from "./chats.js";
import { describe, next } from "./chatstate.js";
import { wireComposer } from "./composer.js";
import { consultMessage, drawConsult, wireConsult } from "./consult.js";
import { closeDialog, wireEscalation } from "./escalate.js";
import { tierPath } from "./format.js";
import { send } from "./link.js";
import { claimed, ensureChat, isHeld, isOnScreen, markRead, outbox } from "./state.js";
import { showTags } from "./tags.js";
import { showVisitor } from "./visitor.js";

const paneTemplate = document.getElementById("pane-template");
/** Controls for a chat the agent holds: hidden and disabled in every other state. */
const HOLDER_CONTROLS = ".end-btn, .esc-btn";
/** The composer: for the holder, and for an agent who joined to take the chat over. */
const REPLY_CONTROLS = "form.composer";
const REPLY_FIELDS = "form.composer :is(textarea, input, button)";

export function createPane(c, close) {
  const pane = paneTemplate.content.firstElementChild.cloneNode(true);
  pane.dataset.chat = c.id;
  followImages(pane.querySelector(".transcript"));
  wireComposer(pane, c);
  wireEscalation(pane, c);
  wireConsult(pane, c);
  pane.querySelector(".end-btn").addEventListener("click", () => {
    if (confirm("End this chat as resolved?")) send({ type: TO_SERVER.END, chat: c.id });
  });
  pane.querySelector(".pane-close").addEventListener("click", () => close(c.id));
  pane.querySelector(".pane-take").addEventListener("click", () => {
    claimed.add(c.id);
    send({ type: TO_SERVER.TAKE, chat: c.id });
  });
  c.typing = new TypingIndicator(pane.querySelector(".typing"));
  return pane;
}

/** Feed one of the chat's frames to its state machine; redraw if the state changed. */
export function moveTo(c, frame) {
  const before = c.state;
  c.state = next(before, frame);
  if (c.state === before) return;
  if (!isHeld(c)) {
    c.composerTyping?.reset();
    c.typing?.hide();
  }
  drawState(c);
}

/** The banner and the controls of the chat's state. */
export function drawState(c) {
  if (!c.pane) return;
  const { banner, canWrite, canReply, isOver } = describe(c.state);
  c.pane.dataset.state = c.state.name;
  for (const control of c.pane.querySelectorAll(HOLDER_CONTROLS)) {
    control.hidden = !canWrite;
    control.disabled = !canWrite;
  }
  for (const control of c.pane.querySelectorAll(REPLY_CONTROLS)) control.hidden = !canReply;
  for (const field of c.pane.querySelectorAll(REPLY_FIELDS)) field.disabled = !canReply;
  if (!canWrite) closeDialog(c.pane);
  c.pane.querySelector(".pane-close").hidden = !isOver;
  c.pane.querySelector(".pane-take").hidden = c.state.name !== "waiting";
  c.pane.querySelector(".pane-banner").textContent = banner;
  c.tab?.classList.toggle("over", isOver);
  showTags(c, canWrite);
  drawConsult(c);
}

/** The chat's details (a `chat.info` frame), on its pane and its tab. */
export function applyInfo(info) {
  const c = ensureChat(info.chat);
  c.info = info;
  moveTo(c, info);
  if (!c.pane) return;
  c.pane.querySelector(".pane-title").replaceChildren(bdi(info.visitor), " · ", bdi(info.topic));
  c.tab.querySelector(".tab-name").textContent = info.visitor;
  c.pane.querySelector(".pane-meta").replaceChildren(...metaLine(info));
  showHandover(c.pane, info.handover);
  showVisitor(c.pane, info.details);
  showTimeline(c.pane, info.flow);
  drawState(c);
}

/** "e-mail · path: Level 1 → Level 2" (the page, browser and the rest are in the Visitor
    panel), each visitor value isolated. */
function metaLine(info) {
  const parts = [info.email ? bdi(info.email) : "no e-mail"];
  parts.push(`path: ${tierPath(info.tier_path) || "–"}`);
  return parts.flatMap((part, i) => (i ? [" · ", part] : [part]));
}

function showHandover(pane, h) {
  const box = pane.querySelector(".handover");
  box.hidden = !h;
  if (!h) return;
  box.replaceChildren(
    el("strong", {}, [
      "Handed over from ",
      bdi(h.from_agent || h.requested_by),
      ` (${h.from_stage}, ${h.from_tier}) to ${h.to}`,
    ]),
    el("div", {}, h.reason ? ["Reason: ", bdi(h.reason)] : ["No reason given"]),
    el("div", { className: "note" }, h.note ? ["Note: ", bdi(h.note)] : ["No note"]),
  );
}

function showTimeline(pane, flow) {
  const items = (flow || []).map((f) =>
    el("li", {}, [el("time", { dateTime: f.at, textContent: formatTime(f.at) }), " ", bdi(f.text)]),
  );
  pane.querySelector(".timeline ol").replaceChildren(...items);
}

export function showCommandResult(c, text) {
  c.pane.querySelector(".command-result").textContent = text;
}

/** A message in order goes on the transcript; a gap asks the server to replay from the last. */
export function addMessage(m) {
  const c = ensureChat(m.chat);
  if (m.client_id) outbox.delete(m.client_id);
  if (!c.pane) {
    countUnseen(c, m);
    return;
  }
  if (m.seq <= c.lastSeq) return;
  if (m.seq > c.lastSeq + 1) {
    send({ type: TO_SERVER.RESUME, chat: c.id, since: c.lastSeq });
    return;
  }
  c.lastSeq = m.seq;
  const list = c.pane.querySelector(".transcript");
  appendMessage(list, m);
  list.scrollTop = list.scrollHeight;
  if (m.event === "consult") consultMessage(c, m);
  if (m.kind !== "visitor") return;
  c.typing.hide();
  if (isOnScreen(c)) markRead(c);
  else countUnseen(c, m);
  drawChatList();
}

/** A visitor's message the agent has not seen, in a chat it holds. */
function countUnseen(c, m) {
  if (m.kind !== "visitor" || !isHeld(c)) return;
  c.unread += 1;
  const name = c.info?.visitor || c.summary?.visitor || "The visitor";
  raise(chatKey(c.id), { title: `${name} wrote`, body: m.text.slice(0, 120), chat: c.id });
  drawChatList();
}
