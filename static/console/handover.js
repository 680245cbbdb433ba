/* Hand-overs the first agent stays in the chat for: a warm escalation, or a hand to a colleague.
   The "Hand-overs" card lists those offered to this agent (Accept, Decline, View chat, and the
   seconds left); a chat's pane shows where its hand-over stands in its hand-over bar (waiting
   for an answer with Cancel, the receiver joined, Take over for the receiver, or what became of
   it); the Escalate dialog lists the colleagues the chat may be handed to. */
import { bdi, el } from "../chat/dom.js";
import { FROM_SERVER, TO_SERVER } from "../chat/protocol.js";
import { clear, raise } from "./alerts.js";
import { drawChatList } from "./chats.js";
import { tierPath } from "./format.js";
import { send } from "./link.js";
import { moveTo } from "./pane.js";
import { openChat } from "./panes.js";
import { agentId, chats, claimed, ensureChat, view } from "./state.js";
import { showToast } from "./toast.js";

const list = document.getElementById("handover-list");
const count = document.getElementById("handovers-count");
const offered = new Map(); // hand-over id -> `handover.offer` frame, with `until` (local clock)
const states = new Map(); // chat id -> the latest `handover` frame of its open hand-over
const REF_PREFIX = "handover-"; // the `ref` of accept and decline: "handover-<id>"
const handoverKey = (id) => `handover:${id}`;
const OPEN = new Set(["pending", "joined"]);

/** The role this agent has in a hand-over frame. */
function roleOf(f) {
  if (f.from_agent_id === agentId) return "holder";
  if (f.receiver_id === agentId) return "receiver";
  return offered.has(f.handover) ? "offered" : "watcher";
}

// --- The card of hand-overs offered to this agent ------------------------------------------------
function addOffered(f) {
  const until = Date.now() + f.accept_seconds * 1000;
  offered.set(f.handover, { ...f, until });
}

export function onHandoverOffer(f) {
  addOffered(f);
  renderOffered();
  const c = chats.get(f.chat);
  if (c) moveTo(c, { type: "handover", role: "offered", status: "pending" });
  raise(handoverKey(f.handover), {
    title: f.warm ? "You are asked to join a chat" : "A chat is handed to you",
    body: `${f.from_agent}: ${f.visitor} · ${f.topic}`,
  });
}

export function onHandoverOfferClosed(f) {
  offered.delete(f.handover);
  clear(handoverKey(f.handover));
  renderOffered();
  const c = chats.get(f.chat);
  if (c && f.status !== "accepted")
    moveTo(c, { type: "handover", role: "offered", status: "gone" });
}

function secondsLeft(o) {
  return Math.max(0, Math.ceil((o.until - Date.now()) / 1000));
}

function renderOffered() {
  count.textContent = offered.size;
  if (!offered.size) {
    list.replaceChildren(el("li", { className: "empty", textContent: "No hand-overs." }));
    return;
  }
  list.replaceChildren(...[...offered.values()].map(offeredItem));
}

function offeredItem(o) {
  const kind = o.warm ? "Warm hand-over" : "Hand-over";
  const details = [
    el("strong", {}, [bdi(o.visitor)]),
    el("span", { className: "muted small" }, [" · ", bdi(o.topic)]),
    el("div", { className: "small" }, [`${kind} from `, bdi(o.from_agent), " to ", bdi(o.to)]),
    el("div", { className: "muted small", textContent: tierPath(o.tier_path) }),
  ];
  if (o.reason) details.push(el("div", { className: "small" }, ["Reason: ", bdi(o.reason)]));
  details.push(
    el("div", { className: "small handover-line" }, o.note ? ["Note: ", bdi(o.note)] : ["No note"]),
  );
  details.push(el("div", { className: "small handover-countdown", textContent: countdown(o) }));
  const dataset = { handover: o.handover, chat: o.chat };
  return el("li", { className: "queue-item handover-item", dataset }, [
    el("div", { className: "queue-info" }, details),
    el("div", { className: "offer-actions" }, answerButtons(o)),
  ]);
}

function answerButtons(o) {
  const accept = el("button", {
    type: "button",
    className: "handover-accept",
    textContent: o.warm ? "Join" : "Accept",
  });
  const decline = el("button", {
    type: "button",
    className: "secondary handover-decline",
    textContent: "Decline",
  });
  const view = el("button", {
    type: "button",
    className: "secondary handover-view",
    textContent: "View chat",
  });
  const answer = (type) => {
    accept.disabled = decline.disabled = true;
    if (type === TO_SERVER.HANDOVER_ACCEPT) claimed.add(o.chat);
    send({ type, handover: o.handover, ref: `${REF_PREFIX}${o.handover}` });
  };
  accept.addEventListener("click", () => answer(TO_SERVER.HANDOVER_ACCEPT));
  decline.addEventListener("click", () => answer(TO_SERVER.HANDOVER_DECLINE));
  view.addEventListener("click", () => openChat(o.chat));
  return [accept, decline, view];
}

function countdown(o) {
  return `${secondsLeft(o)} s to answer`;
}

/** Once a second: the countdowns, on the card and on the panes waiting for an answer. */
export function tickHandovers() {
  for (const li of list.querySelectorAll(".handover-item")) {
    const o = offered.get(Number(li.dataset.handover));
    if (o) li.querySelector(".handover-countdown").textContent = countdown(o);
  }
  for (const [chatId, f] of states) {
    if (f.status === "pending") drawBar(chats.get(chatId));
  }
}

/** An error answering a hand-over: say so and drop it. True if the error was about one. */
export function handoverRefused(error) {
  if (typeof error.ref !== "string" || !error.ref.startsWith(REF_PREFIX)) return false;
  showToast(error.message);
  const id = Number(error.ref.slice(REF_PREFIX.length));
  if (error.code !== "at_capacity" && error.code !== "not_online") offered.delete(id);
  renderOffered();
  return true;
}

// --- Where a chat's hand-over stands -------------------------------------------------------------
const SETTLED = {
  completed: (f, role) =>
    role === "holder" ? `${f.receiver} took over the chat.` : "You took over: the chat is yours.",
  timed_out: () => "No one accepted the hand-over in time: the chat stays with you.",
  declined: (f) => f.text || "The hand-over was declined: the chat stays with you.",
  cancelled: (f) => f.text || "The hand-over was cancelled.",
  ended: () => "The chat ended.",
};

export function onHandover(f) {
  const c = ensureChat(f.chat);
  const role = roleOf(f);
  c.handoverEnded = false;
  if (OPEN.has(f.status)) states.set(f.chat, { ...f, role, until: untilOf(f) });
  else {
    states.delete(f.chat);
    c.handoverEnded = true;
    c.handoverNote = SETTLED[f.status]?.(f, role) || f.text;
  }
  moveTo(c, { type: "handover", role, status: f.status });
  if (role === "receiver" && f.status === "joined") showJoined(c);
  drawBar(c);
  const said = c.pane?.querySelector(".command-result");
  if (said && !OPEN.has(f.status)) said.textContent = ""; // "Asked … to join" is over
  if (role === "holder" && (f.status === "timed_out" || f.status === "declined")) {
    raise(handoverKey(f.handover), {
      title: "Hand-over did not happen",
      body: c.handoverNote,
      chat: c.id,
    });
    showToast(c.handoverNote);
  }
}

/** The receiver joined (here, or before a reload): the chat is listed in My chats, and comes
    on screen if this tab asked to join or shows no chat yet. */
function showJoined(c) {
  const asked = claimed.delete(c.id);
  if (asked || (!c.pane && view.activeChat === null)) openChat(c.id);
  else drawChatList();
}

function untilOf(f) {
  return new Date(f.deadline).getTime();
}

/** From `hello` or `queue`: the offers still open and the hand-overs this agent is part of. */
export function setHandovers(rows) {
  offered.clear();
  for (const row of rows || []) {
    if (row.type === FROM_SERVER.HANDOVER_OFFER) addOffered(row);
  }
  renderOffered();
  for (const row of rows || []) {
    if (row.type === FROM_SERVER.HANDOVER) onHandover(row);
  }
}

/** The chat's header came (`chat.info`): its open hand-over, as this agent sees it. */
export function applyHandoverInfo(info) {
  const c = ensureChat(info.chat);
  const h = info.handover_state;
  if (h) states.set(info.chat, { ...h, until: untilOf(h) });
  else states.delete(info.chat);
  drawBar(c);
}

/** The pane's hand-over bar: the text and the one action that fits. */
export function drawBar(c) {
  if (!c?.pane) return;
  const bar = c.pane.querySelector(".handover-bar");
  const f = states.get(c.id);
  if (!f) {
    bar.hidden = !c.handoverNote;
    bar.replaceChildren(c.handoverNote || "");
    return;
  }
  bar.hidden = false;
  const parts = [];
  const actions = [];
  const kind = f.warm ? "Warm hand-over" : "Hand-over";
  if (f.status === "pending" && f.role === "holder") {
    const left = Math.max(0, Math.ceil((f.until - Date.now()) / 1000));
    parts.push(`${kind} to `, bdi(f.to), `: waiting for an answer (${left} s). You keep the chat.`);
    actions.push(
      button("Cancel hand-over", "handover-cancel secondary", TO_SERVER.HANDOVER_CANCEL, c),
    );
  } else if (f.status === "joined" && f.role === "holder") {
    parts.push(bdi(f.receiver), " joined the chat: both of you are in it until they take over.");
    // A receiver who does not take over (or went away) would keep the chat in two hands.
    actions.push(
      button("Cancel hand-over", "handover-cancel secondary", TO_SERVER.HANDOVER_CANCEL, c),
    );
  } else if (f.status === "joined" && f.role === "receiver") {
    parts.push("You joined ", bdi(f.from_agent), "'s chat. Take over when you are ready.");
    actions.push(button("Take over", "handover-take", TO_SERVER.HANDOVER_TAKE, c));
  } else if (f.status === "pending") {
    parts.push(`${kind} from `, bdi(f.from_agent), ": accept it in Hand-overs to join.");
  } else {
    parts.push(bdi(f.from_agent), " and ", bdi(f.receiver), " are both in this chat.");
  }
  bar.replaceChildren(el("span", { className: "handover-text" }, parts), ...actions);
}

function button(text, className, type, c) {
  const b = el("button", { type: "button", className, textContent: text });
  b.addEventListener("click", () => {
    b.disabled = true;
    send({ type, chat: c.id });
  });
  return b;
}

// --- The Escalate dialog's colleagues ------------------------------------------------------------
/** The colleagues the chat may be handed to, as choices of the dialog's target, and how. */
export function colleagueChoices(f) {
  if (!f.colleague_modes?.length) return [];
  const nodes = [
    el("p", { className: "small esc-colleague-title", textContent: "Or a colleague:" }),
  ];
  if (!f.colleagues.length) {
    const none = "No colleague of this tier or higher is online with free capacity.";
    nodes.push(el("p", { className: "muted small", textContent: none }));
  }
  for (const colleague of f.colleagues) {
    const input = el("input", { type: "radio", name: "target", value: `@${colleague.id}` });
    input.dataset.colleague = colleague.id;
    nodes.push(
      el("label", { className: "inline esc-target esc-colleague" }, [
        input,
        el("span", {}, [
          bdi(colleague.name),
          ` · ${colleague.tier} · ${colleague.load} of ${colleague.capacity} chats`,
        ]),
      ]),
    );
  }
  const mode = el("select", { className: "esc-mode" });
  const labels = {
    warm: "Warm: stay until they take over",
    cold: "Cold: hand over when they accept",
  };
  mode.append(...f.colleague_modes.map((m) => el("option", { value: m, textContent: labels[m] })));
  nodes.push(el("label", { className: "esc-mode-label" }, ["Hand to a colleague ", mode]));
  return nodes;
}

/** The dialog's submit for a colleague: the frame to send (null: the pick is not a colleague). */
export function colleagueRequest(dialog, picked, c, reason, note) {
  if (!picked.dataset.colleague) return null;
  const mode = dialog.querySelector(".esc-mode");
  return {
    type: TO_SERVER.HANDOVER_REQUEST,
    chat: c.id,
    colleague: Number(picked.dataset.colleague),
    warm: mode ? mode.value === "warm" : true,
    reason,
    note,
  };
}
