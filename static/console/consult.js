/* Consulting a colleague on a chat: an internal thread the visitor never sees. The holder's
   Consult button and dialog (an online colleague or a group, and the question); the consult box
   in the pane of both sides (the question, who answered, a reply box and Close); the "Asked for
   advice" card; the alert when a colleague asks or answers. The thread's messages are the chat's
   internal messages with event "consult": they come in the transcript with the rest
   (transcript.js marks them), so the chat's history keeps them for the next holder. */
import { bdi, clickOnKeys, el, redrawKeepingFocus } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { chatKey, clear, raise } from "./alerts.js";
import { send } from "./link.js";
import { agentId, agentName, chats, ensureChat, isHeld, isOnScreen, maxChars } from "./state.js";

const REF = "consult-"; // the `ref` of this module's frames: "consult-<chat id>"
const consults = new Map(); // consult id -> its latest `consult` frame
const list = document.getElementById("consult-list");
const count = document.getElementById("consult-count");

const askedByMe = (f) => f.asked_by_id === agentId;
/** A consult this agent is asked in and may still answer: open, nobody else answered. */
const mineToAnswer = (f) =>
  !askedByMe(f) &&
  f.status === "open" &&
  (f.answered_by_id === null || f.answered_by_id === agentId);

/** The consult the chat's pane shows: the latest frame, else the one its header named. */
const consultOf = (c) => c.consult || c.info?.consult || null;

export function wireConsult(pane, c) {
  const dialog = pane.querySelector(".consult-dialog");
  const ref = `${REF}${c.id}`;
  pane.querySelector(".consult-btn").addEventListener("click", () => {
    send({ type: TO_SERVER.CONSULT_OPTIONS, chat: c.id, ref });
  });
  pane.querySelector(".consult-cancel").addEventListener("click", () => dialog.close());
  const question = dialog.querySelector(".consult-question-text");
  question.maxLength = maxChars;
  dialog.querySelector(".consult-ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const picked = dialog.querySelector("input[name=consult-to]:checked");
    const text = question.value.trim();
    if (!picked || !text) {
      showError(
        dialog,
        ".consult-dialog-error",
        picked ? "Write your question." : "Choose a colleague or a group.",
      );
      return;
    }
    showError(dialog, ".consult-dialog-error", "");
    const [kind, id] = picked.value.split(":");
    send({ type: TO_SERVER.CONSULT_OPEN, chat: c.id, [kind]: Number(id), text, ref });
  });
  const form = pane.querySelector(".consult-form");
  const textarea = form.querySelector(".consult-text");
  textarea.maxLength = maxChars;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const f = consultOf(c);
    const text = textarea.value.trim();
    if (!f || !text) return;
    showError(pane, ".consult-error", "");
    if (!send({ type: TO_SERVER.CONSULT_REPLY, consult: f.consult, text, ref })) {
      showError(pane, ".consult-error", "Not connected: send it again in a moment.");
      return;
    }
    textarea.value = "";
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey) return;
    event.preventDefault();
    form.requestSubmit();
  });
  pane.querySelector(".consult-close").addEventListener("click", () => {
    const f = consultOf(c);
    if (f) send({ type: TO_SERVER.CONSULT_CLOSE, consult: f.consult, ref });
  });
}

function showError(root, selector, text) {
  root.querySelector(selector).textContent = text;
}

/** The answer to the Consult button: whom the agent may ask, in the dialog. */
export function showConsultOptions(f) {
  const c = chats.get(f.chat);
  if (!c?.pane) return;
  const dialog = c.pane.querySelector(".consult-dialog");
  const people = f.colleagues.map((p) =>
    choice(`agent:${p.id}`, [
      bdi(p.name),
      el("code", { className: "muted small", textContent: ` @${p.handle}` }),
    ]),
  );
  const groups = f.groups.map((g) => {
    const label = choice(`group:${g.id}`, [
      bdi(g.name),
      el("span", { className: "muted small", textContent: ` · ${g.online} online` }),
    ]);
    label.querySelector("input").disabled = g.online === 0;
    return label;
  });
  const none = (text) => [el("p", { className: "muted small", textContent: text })];
  dialog
    .querySelector(".consult-colleagues")
    .replaceChildren(
      el("legend", { textContent: "Colleague" }),
      ...(people.length ? people : none("No colleague is online.")),
    );
  dialog
    .querySelector(".consult-groups")
    .replaceChildren(
      el("legend", { textContent: "Or a group" }),
      ...(groups.length ? groups : none("No groups.")),
    );
  showError(dialog, ".consult-dialog-error", "");
  if (!dialog.open) dialog.showModal();
}

function choice(value, label) {
  const input = el("input", { type: "radio", name: "consult-to", value });
  return el("label", { className: "inline" }, [input, ...label]);
}

/** A `consult` frame: a consult this agent asked or is asked in opened, was answered or closed. */
export function applyConsult(f) {
  const before = consults.get(f.consult);
  consults.set(f.consult, f);
  const c = ensureChat(f.chat);
  c.consult = f;
  if (askedByMe(f) && f.status === "open" && c.pane) {
    const dialog = c.pane.querySelector(".consult-dialog");
    if (dialog.open) dialog.close();
    c.pane.querySelector(".consult-question-text").value = "";
  }
  if (mineToAnswer(f) && !before && !isOnScreen(c)) {
    raise(chatKey(c.id), {
      title: `${f.asked_by} asks your advice`,
      body: `${f.visitor} · ${f.question}`.slice(0, 120),
      chat: c.id,
    });
  } else if (!askedByMe(f) && !mineToAnswer(f) && !isHeld(c)) {
    clear(chatKey(c.id)); // answered by another member, or closed: nothing to do any more
  }
  drawConsult(c);
  renderConsultList();
}

/** A thread message in a pane: the other side's, while the agent looks elsewhere, alerts. */
export function consultMessage(c, m) {
  if (m.author === agentName || isOnScreen(c)) return;
  raise(chatKey(c.id), {
    title: `${m.author} wrote in the consult`,
    body: m.text.slice(0, 120),
    chat: c.id,
  });
}

const CLOSED_BECAUSE = {
  closed: (f) => `The consult is closed (by ${f.closed_by}).`,
  chat_ended: () => "The consult is closed: the chat ended.",
  handed_over: () => "The consult is closed: the chat was handed over.",
};

function statusText(f) {
  if (f.status !== "open") return (CLOSED_BECAUSE[f.reason] || CLOSED_BECAUSE.closed)(f);
  if (!f.answered_by) return askedByMe(f) ? "Waiting for an answer." : "Nobody has answered yet.";
  if (f.answered_by_id === agentId) return "You answered.";
  return `${f.answered_by} answered.`;
}

/** The pane's Consult button and consult box, for the chat's consult and the agent's part. */
export function drawConsult(c) {
  if (!c.pane) return;
  const f = consultOf(c);
  const open = f?.status === "open";
  const button = c.pane.querySelector(".consult-btn");
  button.hidden = !isHeld(c) || open;
  button.disabled = button.hidden;
  const box = c.pane.querySelector(".consult-box");
  box.hidden = !f; // a closed one stays, saying why, until another opens or the pane closes
  if (box.hidden) return;
  box
    .querySelector(".consult-title")
    .replaceChildren(
      ...(askedByMe(f) ? ["Consulting ", bdi(f.to)] : [bdi(f.asked_by), " asks your advice"]),
    );
  box.querySelector(".consult-question").replaceChildren("Question: ", bdi(f.question));
  box.querySelector(".consult-status").textContent = statusText(f);
  const canWrite = open && (askedByMe(f) || mineToAnswer(f));
  const form = box.querySelector(".consult-form");
  form.hidden = !canWrite;
  for (const field of form.querySelectorAll("textarea, button")) field.disabled = !canWrite;
  form
    .querySelector(".consult-text")
    .setAttribute("aria-label", askedByMe(f) ? `Write to ${f.to}` : `Answer ${f.asked_by}`);
  form.querySelector(".consult-text").placeholder = askedByMe(f)
    ? `Write to ${f.to}… (internal: the visitor never sees it)`
    : `Answer ${f.asked_by}… (internal: the visitor never sees it)`;
}

/** An error answering one of this module's frames: in the dialog if open, else in the box. */
export function consultRefused(f) {
  if (typeof f.ref !== "string" || !f.ref.startsWith(REF)) return false;
  const c = chats.get(Number(f.ref.slice(REF.length)));
  if (!c?.pane) return true;
  const dialog = c.pane.querySelector(".consult-dialog");
  if (dialog.open) showError(dialog, ".consult-dialog-error", f.message);
  else showError(c.pane, ".consult-error", f.message);
  return true;
}

/** The "Asked for advice" card: the consults this agent may answer now. */
function renderConsultList() {
  const asked = [...consults.values()].filter(mineToAnswer);
  count.textContent = asked.length;
  if (!asked.length) {
    const empty = "Nobody has asked for your advice.";
    list.replaceChildren(el("li", { className: "empty", textContent: empty }));
    return;
  }
  redrawKeepingFocus(list, () => list.replaceChildren(...asked.map(consultItem)));
}

function consultItem(f) {
  const item = el("li", { className: "consult-item", dataset: { chat: f.chat }, tabIndex: 0 });
  item.setAttribute("role", "button");
  item.append(
    el("strong", {}, [bdi(f.asked_by)]),
    el("span", { className: "muted small" }, [" · ", bdi(f.visitor), " · ", bdi(f.topic)]),
    el("div", { className: "small" }, [bdi(f.question)]),
  );
  return item;
}

/** Call `open(chatId)` when a consult in the card is chosen (click, Enter or Space). */
export function onConsultSelect(open) {
  list.addEventListener("click", (event) => {
    const item = event.target.closest(".consult-item");
    if (item) open(Number(item.dataset.chat));
  });
  clickOnKeys(list, ".consult-item");
}
