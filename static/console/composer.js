/* A pane's composer: replies and internal notes, kept in the outbox until acknowledged. */
import { submitOnEnter } from "../chat/dom.js";
import { newClientId, TO_SERVER } from "../chat/protocol.js";
import { send } from "./link.js";
import { maxChars, outbox } from "./state.js";

export function wireComposer(pane, c) {
  const form = pane.querySelector("form.composer");
  const textarea = form.querySelector("textarea");
  textarea.maxLength = maxChars;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textarea.value.trim();
    showComposerError(pane, "");
    if (!text) return;
    const internal = form.querySelector(".internal").checked;
    const client_id = newClientId();
    send(outbox.add({ type: TO_SERVER.MESSAGE, chat: c.id, text, internal, client_id }));
    textarea.value = "";
  });
  submitOnEnter(textarea, form);
}

export function showComposerError(pane, text) {
  pane.querySelector(".composer-error").textContent = text;
}
