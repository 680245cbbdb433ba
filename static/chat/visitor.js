/* The visitor's chat page: live transcript, queue position, composer that never loses a message,
   "Alex is typing…" both ways, and a clear end (banner and state line) when the chat is over. */
import { uploadFile, wireFilePicking } from "./attach.js";
import { submitOnEnter } from "./dom.js";
import { endText } from "./ending.js";
import {
  dispatch,
  FROM_SERVER,
  newClientId,
  PING_INTERVAL_MS,
  socketUrl,
  TO_SERVER,
} from "./protocol.js";
import { Outbox, ReconnectingSocket } from "./socket.js";
import { appendMessage, collapseSearching, followImages, localizeTimes } from "./transcript.js";
import { TypingIndicator, TypingSender } from "./typing.js";

const room = document.getElementById("room");
const chatId = Number(room.dataset.chat);
const token = JSON.parse(document.getElementById("visitor-token").textContent);
const transcript = document.getElementById("transcript");
const queueBox = document.getElementById("queue-box");
const banner = document.getElementById("room-banner");
const form = document.getElementById("composer");
const input = document.getElementById("composer-text");
const errorEl = document.getElementById("composer-error");
const statusEl = document.getElementById("composer-status");
const endBtn = document.getElementById("end-chat");
const newChat = document.getElementById("new-chat");
const offlineForm = document.getElementById("offline-form");
const transcriptForm = document.getElementById("transcript-form");
const surveyForm = document.getElementById("survey-form");
const conn = document.getElementById("conn");
const outbox = new Outbox(); // until the server acknowledges each frame
const agentTyping = new TypingIndicator(document.getElementById("typing"));
let agentName = ""; // the agent with the visitor now, for "Alex ended the chat."

collapseSearching(transcript);
let lastSeq = 0;
for (const li of transcript.querySelectorAll("li[data-seq]")) {
  lastSeq = Math.max(lastSeq, Number(li.dataset.seq));
}

const scrollDown = () => {
  transcript.scrollTop = transcript.scrollHeight;
};
scrollDown();
followImages(transcript);

const isOpen = (status) => status === "queued" || status === "active";

/** The chat's status; when it is over, `by` says who or what ended it (if known). */
function setStatus(status, by = "") {
  room.dataset.status = status;
  const open = isOpen(status);
  input.disabled = !open;
  for (const button of form.querySelectorAll("button")) button.disabled = !open;
  form.hidden = !open; // over: the banner says why, and "Start a new chat" is the way on
  endBtn.hidden = !open;
  newChat.hidden = open;
  if (transcriptForm) transcriptForm.hidden = open; // over: the transcript by e-mail (if set up)
  banner.hidden = open;
  document.dispatchEvent(new CustomEvent("tierline:status", { detail: { status } }));
  if (open) return;
  typing.stop();
  agentTyping.hide();
  queueBox.hidden = true;
  banner.textContent = endText(status, by, agentName);
  socket.close(status === "left" ? "You left the queue" : "Chat ended");
}

function showQueue(q) {
  if (!q) {
    queueBox.hidden = true;
    return;
  }
  queueBox.hidden = false;
  queueBox.textContent = q.text;
  queueBox.dataset.position = q.position;
}

function addMessage(m) {
  if (m.client_id) outbox.delete(m.client_id); // stored: whether or not it is shown here
  if (m.seq <= lastSeq) return; // already shown (replay after reconnect)
  if (m.seq > lastSeq + 1) {
    socket.send({ type: TO_SERVER.RESUME, since: lastSeq }); // a gap: ask for it
    return;
  }
  lastSeq = m.seq;
  appendMessage(transcript, m);
  // For the widget's frame (if this page is one): the unread count on the launcher.
  document.dispatchEvent(
    new CustomEvent("tierline:message", { detail: { seq: m.seq, kind: m.kind } }),
  );
  if (m.kind !== "visitor") agentTyping.hide();
  if (m.kind === "agent") agentName = m.author;
  if (m.event === "agent_joined" || m.event === "agent_left") agentName = ""; // someone new
  if (m.kind === "agent" || m.event === "agent_joined") queueBox.hidden = true;
  if (m.event === "offline" || m.event === "after_agent_message") offlineForm.hidden = false;
  if (m.event === "survey") surveyForm.hidden = false;
  if (m.event === "message_left") offlineForm.hidden = true;
  if (m.event === "dropped") setStatus("left"); // left the queue: a follow-up team has it now
  scrollDown();
}

function showError(f) {
  if (outbox.retryIfRateLimited(f, (frame) => socket.send(frame))) return;
  if (f.ref) outbox.delete(f.ref);
  errorEl.textContent = f.message;
}

function onHello(f) {
  agentName = f.agent || "";
  showQueue(f.status === "queued" ? f.queue : null);
  if (!isOpen(f.status)) setStatus(f.status);
}

function onReplayDone(f) {
  if (f.more) socket.send({ type: TO_SERVER.RESUME, since: lastSeq });
}

function onAck(f) {
  if (f.chat === chatId) outbox.delete(f.client_id);
}

const handlers = new Map([
  [FROM_SERVER.HELLO, onHello],
  [FROM_SERVER.MESSAGE, addMessage],
  [FROM_SERVER.REPLAY_DONE, onReplayDone],
  [FROM_SERVER.QUEUE_POSITION, showQueue],
  [FROM_SERVER.CHAT_STATUS, (f) => setStatus(f.status, f.by)],
  [FROM_SERVER.TYPING, (f) => agentTyping.show(f)],
  [FROM_SERVER.ACK, onAck],
  [FROM_SERVER.ERROR, showError],
]);

const socket = new ReconnectingSocket({
  url: () => {
    const query = `token=${encodeURIComponent(token)}&since=${lastSeq}`;
    return socketUrl(`/ws/chat/${chatId}/?${query}`);
  },
  stateEl: conn,
  onOpen: () => outbox.resend((frame) => socket.send(frame)),
  onFrame: (f) => dispatch(handlers, f),
});
const typing = new TypingSender((active) => socket.send({ type: TO_SERVER.TYPING, active }));

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  errorEl.textContent = "";
  if (!text) return;
  typing.stop();
  const frame = outbox.add({ type: TO_SERVER.MESSAGE, text, client_id: newClientId() });
  socket.send(frame); // if closed, it goes out on reconnect
  input.value = "";
});
submitOnEnter(input, form);
wireFilePicking({
  button: form.querySelector(".attach-btn"),
  input: document.getElementById("attach-file"),
  targets: [transcript, form],
  canSend: () => isOpen(room.dataset.status),
  // The token goes in a header, not a cookie: the page also works in a cross-site frame, where
  // it has no cookie at all.
  send: (file) =>
    uploadFile({
      url: form.dataset.attachUrl,
      file,
      headers: { "X-Tierline-Visitor": `${chatId}:${token}` },
      statusEl,
      errorEl,
    }),
});
input.addEventListener("input", () => typing.changed(input.value));
input.addEventListener("blur", () => typing.stop());
endBtn.addEventListener("click", () => {
  if (confirm("End this chat?")) socket.send({ type: TO_SERVER.END });
});
setInterval(() => socket.send({ type: TO_SERVER.PING }), PING_INTERVAL_MS);
const lastLine = transcript.lastElementChild;
// Left the queue earlier (the chat waits for a follow-up now): the page stays closed.
const left = room.dataset.status === "queued" && lastLine?.dataset.event === "dropped";
setStatus(left ? "left" : room.dataset.status);
localizeTimes(document);
