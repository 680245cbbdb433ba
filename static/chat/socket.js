/* A websocket that reconnects with exponential backoff and jitter and shows its state, and the
   outbox of frames it still owes the server. Pages render what users type with textContent only:
   nothing a user types is HTML. */
import { CLOSE, ERROR } from "./protocol.js";

/** How long a page waits before resending a frame the server refused as rate limited. */
const RATE_LIMITED_RETRY_MS = 1500;

export class ReconnectingSocket {
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
    if (this.attempt) this.setState("reconnecting", "Reconnecting…");
    else this.setState("connecting", "Connecting…");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState("open", "Connected");
      this.onOpen?.();
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => this.closed(event.code);
  }

  closed(code) {
    if (code === CLOSE.FORBIDDEN) {
      this.closedForGood = true;
      this.setState("closed", "Not allowed: please reload the page.");
      return;
    }
    if (this.closedForGood) return; // the page said why when it closed the socket
    this.attempt += 1;
    // Exponential backoff capped at 30 s, with full jitter so a restarted server is not stampeded.
    const ceiling = Math.min(30000, 500 * 2 ** Math.min(this.attempt, 6));
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.setState("reconnecting", "Connection lost. Reconnecting…");
    this.timer = setTimeout(() => this.connect(), delay);
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Close for good; the state line says `text` (e.g. "Chat ended") from now on. */
  close(text = "Closed") {
    this.closedForGood = true;
    clearTimeout(this.timer);
    this.setState("closed", text);
    this.ws?.close();
  }
}

/** Frames sent and not yet acknowledged, by client_id: sent again after a reconnect. */
export class Outbox extends Map {
  add(frame) {
    this.set(frame.client_id, frame);
    return frame;
  }

  resend(send) {
    for (const frame of this.values()) send(frame);
  }

  /** A refused frame the server only asks to slow down: send it again after a pause. */
  retryIfRateLimited(error, send) {
    if (error.code !== ERROR.RATE_LIMITED || !error.ref || !this.has(error.ref)) return false;
    setTimeout(() => {
      if (this.has(error.ref)) send(this.get(error.ref));
    }, RATE_LIMITED_RETRY_MS);
    return true;
  }
}
