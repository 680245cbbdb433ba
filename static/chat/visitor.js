/* The visitor's chat page: live transcript, queue position, composer that never loses a message. */
"use strict";

(() => {
  const room = document.getElementById("room");
  const chatId = Number(room.dataset.chat);
  const token = JSON.parse(document.getElementById("visitor-token").textContent);
  const transcript = document.getElementById("transcript");
  const queueBox = document.getElementById("queue-box");
  const form = document.getElementById("composer");
  const input = document.getElementById("composer-text");
  const errorEl = document.getElementById("composer-error");
  const endBtn = document.getElementById("end-chat");
  const newChat = document.getElementById("new-chat");

  Tierline.collapseSearching(transcript);
  let lastSeq = 0;
  transcript.querySelectorAll("li[data-seq]").forEach((li) => { lastSeq = Math.max(lastSeq, Number(li.dataset.seq)); });
  const outbox = new Map(); // client_id -> frame, until the server acknowledges it

  const scrollDown = () => { transcript.scrollTop = transcript.scrollHeight; };
  scrollDown();

  function setStatus(status) {
    room.dataset.status = status;
    const open = status === "queued" || status === "active";
    input.disabled = !open;
    form.querySelector("button").disabled = !open;
    endBtn.hidden = !open;
    newChat.hidden = open;
    if (!open) { queueBox.hidden = true; socket.close(); document.getElementById("conn").textContent = status === "left" ? "You left the queue" : "Chat ended"; }
  }

  function showQueue(q) {
    if (!q) { queueBox.hidden = true; return; }
    queueBox.hidden = false;
    queueBox.textContent = q.text;
    queueBox.dataset.position = q.position;
  }

  function addMessage(m) {
    if (m.seq <= lastSeq) return; // already shown (replay after reconnect)
    if (m.seq > lastSeq + 1) { socket.send({ type: "resume", since: lastSeq }); return; } // a gap: ask for it
    lastSeq = m.seq;
    Tierline.appendMessage(transcript, m);
    if (m.client_id) outbox.delete(m.client_id);
    if (m.kind === "agent" || m.event === "agent_joined") queueBox.hidden = true;
    if (m.event === "offline") document.getElementById("offline-form").hidden = false;
    if (m.event === "message_left") document.getElementById("offline-form").hidden = true;
    if (m.event === "dropped") setStatus("left"); // left the queue: a follow-up team has it now
    scrollDown();
  }

  function flushOutbox() { outbox.forEach((frame) => socket.send(frame)); }

  const socket = new Tierline.ReconnectingSocket({
    url: () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/chat/${chatId}/?token=${encodeURIComponent(token)}&since=${lastSeq}`,
    stateEl: document.getElementById("conn"),
    onOpen: () => { flushOutbox(); },
    onFrame: (f) => {
      switch (f.type) {
        case "hello": showQueue(f.status === "queued" ? f.queue : null); if (f.status !== "queued" && f.status !== "active") setStatus(f.status); break;
        case "message": addMessage(f); break;
        case "replay.done": if (f.more) socket.send({ type: "resume", since: lastSeq }); break;
        case "queue.position": showQueue(f); break;
        case "chat.status": setStatus(f.status); break;
        case "ack": outbox.delete(f.client_id); break;
        case "error":
          if (f.code === "rate_limited" && f.ref && outbox.has(f.ref)) { setTimeout(() => socket.send(outbox.get(f.ref)), 1500); break; }
          if (f.ref) outbox.delete(f.ref);
          errorEl.textContent = f.message;
          break;
      }
    },
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    errorEl.textContent = "";
    if (!text) return;
    const frame = { type: "message", text, client_id: Tierline.newClientId() };
    outbox.set(frame.client_id, frame);
    socket.send(frame); // if closed, it goes out on reconnect
    input.value = "";
  });
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
  endBtn.addEventListener("click", () => { if (confirm("End this chat?")) socket.send({ type: "end" }); });
  setInterval(() => socket.send({ type: "ping" }), 20000);
  const lastLine = transcript.lastElementChild;
  // Left the queue earlier (the chat waits for a follow-up now): the page stays closed.
  setStatus(room.dataset.status === "queued" && lastLine && lastLine.dataset.event === "dropped" ? "left" : room.dataset.status);
})();
