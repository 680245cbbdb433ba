/* One chat's pane: title and visitor details, hand-over, timeline, transcript, status banner and
   the controls the agent may use in that status. */
import { bdi, el } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { appendMessage, formatTime } from "../chat/transcript.js";
import { drawChatList } from "./chats.js";
import { wireComposer } from "./composer.js";
import { wireEscalation } from "./escalate.js";
import { tierPath } from "./format.js";
import { send } from "./link.js";
import { agentId, ensureChat, isOnScreen, markRead, outbox } from "./state.js";

const paneTemplate = document.getElementById("pane-template");

export function createPane(c) {
  const pane = paneTemplate.content.firstElementChild.cloneNode(true);
  pane.dataset.chat = c.id;
  wireComposer(pane, c);
  wireEscalation(pane, c);
  pane.querySelector(".end-btn").addEventListener("click", () => {
    if (confirm("End this chat as resolved?")) send({ type: TO_SERVER.END, chat: c.id });
  });
  return pane;
}

/** The chat's details (a `chat.info` frame), on its pane and its tab. */
export function applyInfo(info) {
  const c = ensureChat(info.chat);
  c.info = info;
  if (!c.pane) return;
  c.pane.querySelector(".pane-title").replaceChildren(bdi(info.visitor), " · ", bdi(info.topic));
  c.tab.querySelector(".tab-name").textContent = info.visitor;
  c.pane.querySelector(".pane-meta").replaceChildren(...metaLine(info));
  showHandover(c.pane, info.handover);
  showTimeline(c.pane, info.flow);
  setPaneStatus(c, info.status, info.agent_id === agentId);
}

/** "e-mail · path: Level 1 → Level 2 · page: … · browser", each visitor value isolated. */
function metaLine(info) {
  const parts = [info.email ? bdi(info.email) : "no e-mail"];
  parts.push(`path: ${tierPath(info.tier_path) || "–"}`);
  if (info.context?.page) parts.push(el("span", {}, ["page: ", bdi(info.context.page)]));
  if (info.context?.user_agent) parts.push(bdi(info.context.user_agent.slice(0, 80)));
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

/** Composer, End and Escalate only while the agent holds a live chat; a banner otherwise. */
export function setPaneStatus(c, status, held) {
  if (!c.pane) return;
  const open = (status === "queued" || status === "active") && held;
  c.pane.dataset.status = status;
  for (const control of c.pane.querySelectorAll("form.composer, .end-btn, .esc-btn")) {
    control.hidden = !open;
  }
  const banner = c.pane.querySelector(".pane-banner");
  banner.hidden = open;
  if (open) return;
  if (status === "queued") banner.textContent = "Waiting in the queue: take it to reply.";
  else banner.textContent = held ? "" : `This chat is ${status}.`;
}

/** The chat left this agent by escalation: the pane says where it went and stays read-only. */
export function showHandedOver(c, to) {
  const banner = c.pane.querySelector(".pane-banner");
  banner.hidden = false;
  banner.textContent = `Handed over to ${to}.`;
  c.pane.dataset.handedOver = "true";
}

export function isHandedOver(c) {
  return c.pane?.dataset.handedOver === "true";
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
  if (m.kind !== "visitor") return;
  if (isOnScreen(c)) markRead(c);
  else c.unread += 1;
  drawChatList();
}

function countUnseen(c, m) {
  if (m.kind !== "visitor" || !c.held) return;
  c.unread += 1;
  drawChatList();
}
