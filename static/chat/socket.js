/* A websocket that reconnects with exponential backoff and jitter, and shows its state.
   Messages are rendered by the pages with textContent only: nothing a user types is HTML. */
"use strict";

window.Tierline = window.Tierline || {};

Tierline.ReconnectingSocket = class {
  constructor({ url, onOpen, onFrame, stateEl }) {
    this.url = url; // a function, so each attempt can carry the latest resume point
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.stateEl = stateEl;
    this.attempt = 0;
    this.closedForGood = false;
    this.connect();
  }

  setState(state, text) {
    if (!this.stateEl) return;
    this.stateEl.dataset.state = state;
    this.stateEl.textContent = text;
  }

  connect() {
    this.setState(this.attempt ? "reconnecting" : "connecting", this.attempt ? "Reconnecting…" : "Connecting…");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState("open", "Connected");
      this.onOpen && this.onOpen();
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (event.code === 4403) {
        this.closedForGood = true;
        this.setState("closed", "Not allowed: please reload the page.");
        return;
      }
      if (this.closedForGood) { this.setState("closed", "Closed"); return; }
      this.attempt += 1;
      // Exponential backoff capped at 30 s, with full jitter so a restarted server is not stampeded.
      const ceiling = Math.min(30000, 500 * 2 ** Math.min(this.attempt, 6));
      const delay = ceiling / 2 + Math.random() * ceiling / 2;
      this.setState("reconnecting", "Connection lost. Reconnecting…");
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  get isOpen() { return this.ws && this.ws.readyState === WebSocket.OPEN; }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  close() {
    this.closedForGood = true;
    clearTimeout(this.timer);
    this.ws && this.ws.close();
  }
};

Tierline.newClientId = () =>
  (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : `c${Date.now()}${Math.random().toString(16).slice(2)}`;

Tierline.formatTime = (iso) => {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
};

/* Server-rendered times are in the site's time zone; show every time in the reader's own. */
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("time[datetime]").forEach((t) => { t.textContent = Tierline.formatTime(t.dateTime); });
});

/* One transcript line, built with textContent. */
Tierline.messageItem = (m) => {
  const li = document.createElement("li");
  li.className = `msg msg-${m.kind}`;
  li.dataset.seq = m.seq;
  li.dataset.event = m.event || "";
  if (m.kind !== "system") {
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = m.kind === "internal" ? `${m.author} (internal note)` : m.author;
    li.append(who);
  }
  const time = document.createElement("time");
  time.dateTime = m.at;
  time.textContent = Tierline.formatTime(m.at);
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = m.text;
  li.append(time, text);
  return li;
};

/* Add a line to a transcript. "Still searching" notices are all stored (and replayed), but a run
   of them shows as one line: the latest replaces the one before it. */
Tierline.appendMessage = (list, m) => {
  const last = list.lastElementChild;
  if (m.event === "still_searching" && last && last.dataset.event === "still_searching") last.remove();
  list.append(Tierline.messageItem(m));
};

/* The same for a transcript rendered by the server: keep the last of each run. */
Tierline.collapseSearching = (list) => {
  list.querySelectorAll('li[data-event="still_searching"]').forEach((li) => {
    const next = li.nextElementSibling;
    if (next && next.dataset.event === "still_searching") li.remove();
  });
};
