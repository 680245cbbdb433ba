/* Where one chat stands for this agent: a pure state machine, `next(state, frame)`, fed the
   chat's frames in the order the server sends them (a chat's status and removal come after the
   messages before them, docs/protocol.md "Order"). No DOM here: the pane draws `describe(state)`.

   States: waiting (in a queue, previewed), offered, held, handed_over (`to`), returned,
   ended_by_visitor, ended_by_agent, ended_by_timeout (`by`: timeout or fallback), visitor_gone,
   no_longer_visible (a preview that left the agent's queues), ended (opened after its end),
   consulting (read-only: a colleague asked this agent's advice on it), consult_over,
   handover_offered, joined (in the chat to take it over), handover_left (the hand-over this
   agent joined closed without a take-over: it left the chat). */

export const STATES = Object.freeze([
  "waiting",
  "offered",
  "held",
  "handed_over",
  "returned",
  "ended_by_visitor",
  "ended_by_agent",
  "ended_by_timeout",
  "visitor_gone",
  "no_longer_visible",
  "ended",
  "consulting",
  "consult_over",
  "handover_offered",
  "joined",
  "handover_left",
]);

/** States nothing brings back: the chat ended, or this agent may no longer see it. */
const FINAL = new Set([
  "ended_by_visitor",
  "ended_by_agent",
  "ended_by_timeout",
  "visitor_gone",
  "no_longer_visible",
  "ended",
  "consult_over",
]);
/** The chat left this agent, who may still take it again (it waits in a queue, or is handed
    over again). */
const LET_GO = new Set(["handed_over", "returned", "handover_left"]);
const OPEN_STATUSES = new Set(["queued", "active"]);

export const initial = Object.freeze({ name: "waiting" });

const state = (name, extra = {}) => Object.freeze({ name, ...extra });

export const isFinal = (s) => FINAL.has(s.name);

/** `chat.status` `by` -> the state the chat ends in. */
const ENDED_BY = {
  agent: "ended_by_agent",
  visitor: "ended_by_visitor",
  visitor_gone: "visitor_gone",
  timeout: "ended_by_timeout",
  fallback: "ended_by_timeout",
};

/** `chat.removed` `reason` -> the state, when no `chat.status` said it first. */
const REMOVED_BECAUSE = {
  resolved: () => state("ended_by_agent"),
  visitor_left: () => state("ended_by_visitor"),
  escalated: (f) => state("handed_over", { to: f.handed_over_to || "" }),
  returned: () => state("returned"),
};

function onInfo(s, f) {
  // Asked for advice on a chat someone else holds: read it (a new consult revives a pane).
  if (f.consult?.role === "consultant" && f.status === "active" && !f.held) {
    return state("consulting", { by: f.consult.asked_by });
  }
  if (isFinal(s) || LET_GO.has(s.name)) return s; // a re-read header changes nothing there
  if (f.held && OPEN_STATUSES.has(f.status)) return state("held");
  const role = f.handover_state?.role;
  if (f.status === "active" && role === "receiver") return state("joined");
  if (f.status === "active" && role === "offered") return state("handover_offered");
  if (f.status === "queued") return s.name === "offered" ? s : state("waiting");
  if (f.status === "active") return state("no_longer_visible"); // someone else holds it now
  return state("ended");
}

function onHeld(s) {
  return isFinal(s) ? s : state("held");
}

function onOffer(s, f) {
  return s.name === "waiting" || s.name === "returned" ? state("offered", { offer: f.offer }) : s;
}

function onOfferClosed(s, f) {
  // Accepted: `taken` and `chat.assigned` follow. Otherwise it waits in the queue again.
  if (s.name !== "offered" || s.offer !== f.offer || f.status === "accepted") return s;
  return state("waiting");
}

function onStatus(s, f) {
  if (OPEN_STATUSES.has(f.status) || isFinal(s)) return s;
  if (s.name === "consulting") return state("consult_over");
  if (s.name === "joined" && f.by === "agent") return state("ended"); // the first agent ended it
  const name = ENDED_BY[f.by] || "ended";
  return name === "ended_by_timeout" ? state(name, { by: f.by }) : state(name);
}

function onRemoved(s, f) {
  if (isFinal(s)) return s; // the status came first and said why
  const because = REMOVED_BECAUSE[f.reason];
  if (because) return because(f);
  if (f.reason === "no_longer_visible") return state("no_longer_visible");
  if (f.reason === "consult_closed") return state("consult_over");
  // The hand-over this agent joined closed (cancelled, the chat returned to the queue): the
  // chat goes on without it.
  if (f.reason?.startsWith("handover_")) return state("handover_left");
  return state("ended");
}

/** A hand-over's news (`role` of this agent, `status`), fed by handover.js. */
function onHandover(s, f) {
  if (isFinal(s)) return s;
  if (f.role === "receiver" && f.status === "joined") return state("joined");
  if (f.role === "receiver" && f.status === "completed") return state("held");
  if (f.role === "offered" && f.status === "pending" && s.name !== "held") {
    return state("handover_offered");
  }
  if (s.name === "handover_offered" && f.status !== "pending") return state("no_longer_visible");
  return s;
}

const TRANSITIONS = new Map([
  ["handover", onHandover],
  ["chat.info", onInfo],
  ["chat.assigned", onHeld],
  ["taken", onHeld],
  ["offer", onOffer],
  ["offer.closed", onOfferClosed],
  ["chat.status", onStatus],
  ["chat.removed", onRemoved],
]);

/** The state after `frame`; frames that say nothing about where the chat stands keep it. */
export function next(s, frame) {
  const transition = TRANSITIONS.get(frame.type);
  return transition ? transition(s, frame) : s;
}

const TIMED_OUT = {
  timeout: "The wait timed out: the chat ended without an agent.",
  fallback: "The chat ended: nobody was available to take it.",
};

const BANNERS = {
  waiting: () => "Waiting in the queue: take it to reply.",
  offered: () => "Offered to you: accept it in Offers to reply.",
  held: () => "This chat is active.",
  handed_over: (s) => (s.to ? `Handed over to ${s.to}.` : "Handed over to another team."),
  returned: () => "Returned to the queue: it waits for the next agent.",
  ended_by_visitor: () => "The visitor ended the chat.",
  ended_by_agent: () => "You ended this chat.",
  ended_by_timeout: (s) => TIMED_OUT[s.by] || TIMED_OUT.timeout,
  visitor_gone: () => "The visitor left: their page stopped answering.",
  no_longer_visible: () => "This chat left your queues: you can no longer follow it.",
  ended: () => "This chat has ended.",
  consulting: (s) =>
    `Read-only: ${s.by} asked your advice on this chat. Answer in the consult below.`,
  consult_over: () => "The consult is over: you can no longer follow this chat.",
  handover_offered: () => "Offered to you as a hand-over: accept it in Hand-overs to join.",
  joined: () => "You joined this chat: write to the visitor; take over when ready.",
  handover_left: () => "The hand-over is over: you left this chat.",
};

/** What the pane shows: the banner, whether the agent may write (composer, Internal note, End,
    Escalate: only while holding the chat), and whether anything more can happen. */
export function describe(s) {
  return {
    banner: BANNERS[s.name](s),
    canWrite: s.name === "held",
    canReply: s.name === "held" || s.name === "joined",
    isOver: isFinal(s) || LET_GO.has(s.name),
  };
}
