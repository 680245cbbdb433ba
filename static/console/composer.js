/* A pane's composer: replies and internal notes, kept in the outbox until acknowledged. While the
   agent types a reply the visitor is told so (throttled); never while writing an internal note. */
import { submitOnEnter } from "../chat/dom.js";
import { newClientId, TO_SERVER } from "../chat/protocol.js";
import { TypingSender } from "../chat/typing.js";
import { send } from "./link.js";
import { wireReplyPicker } from "./replies.js";
import { maxChars, outbox } from "./state.js";

export function wireComposer(pane, c) {
  const form = pane.querySelector("form.composer");
  const textarea = form.querySelector("textarea");
  const internal = form.querySelector(".internal");
  const typing = new TypingSender((active) => send({ type: TO_SERVER.TYPING, chat: c.id, active }));
  c.composerTyping = typing;
  const typed = () => (internal.checked ? typing.stop() : typing.changed(textarea.value));
  textarea.maxLength = maxChars;
  textarea.addEventListener("input", typed);
  textarea.addEventListener("blur", () => typing.stop());
  internal.addEventListener("change", typed);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textarea.value.trim();
    showComposerError(pane, "");
    if (!text) return;
    typing.stop();
    const client_id = newClientId();
    const frame = { type: TO_SERVER.MESSAGE, chat: c.id, text, client_id };
    send(outbox.add({ ...frame, internal: internal.checked }));
    textarea.value = "";
  });
  wireReplyPicker(pane, c, textarea); // before Enter-to-send: Enter picks while the list is open
  submitOnEnter(textarea, form);
}

export function showComposerError(pane, text) {
  pane.querySelector(".composer-error").textContent = text;
}
