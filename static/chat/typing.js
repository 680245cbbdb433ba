/* Typing indicators, both ways (never stored): the side that types says so at most every few
   seconds and says when it stops; the other side shows "Alex is typing…" until told otherwise, a
   message arrives, or nothing was heard for a while. */
import { bdi } from "./dom.js";

export const TYPING_EVERY_MS = 3000; // "still typing" at most this often
export const TYPING_SHOWN_MS = 6000; // "… is typing" goes away after this long without news

/** Tells the server that this side is typing: `send(active)` sends the frame (false if the
    socket is closed, so that the next keystroke tries again). */
export class TypingSender {
  constructor(send) {
    this.send = send;
    this.active = false;
    this.sentAt = 0;
  }

  /** The text box changed: an empty box is a stop, anything else "typing" (throttled). */
  changed(text) {
    if (!text.trim()) {
      this.stop();
      return;
    }
    const now = Date.now();
    if (this.active && now - this.sentAt < TYPING_EVERY_MS) return;
    if (this.send(true) === false) return;
    this.active = true;
    this.sentAt = now;
  }

  /** Sent, left the box, or switched to something the other side must not see typed. */
  stop() {
    if (!this.active) return;
    this.active = false;
    this.send(false);
  }

  /** Forget the state without telling anyone (the chat is no longer ours to type in). */
  reset() {
    this.active = false;
  }
}

/** "Name is typing…" in `node`, from the other side's `typing` frames. The line keeps its
    height when empty, so that the page does not jump each time it comes and goes. */
export class TypingIndicator {
  constructor(node) {
    this.node = node;
    this.timer = null;
  }

  show(frame) {
    if (!frame.active) {
      this.hide();
      return;
    }
    this.node.replaceChildren(bdi(frame.name), " is typing…");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.hide(), TYPING_SHOWN_MS);
  }

  hide() {
    clearTimeout(this.timer);
    this.node.replaceChildren();
  }
}
