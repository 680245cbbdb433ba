/* A pane's composer: replies and internal notes, kept in the outbox until acknowledged. While the
   agent types a reply the visitor is told so (throttled); never while writing an internal note. */
import { uploadFile, wireFilePicking } from "../chat/attach.js";
import { submitOnEnter } from "../chat/dom.js";
import { newClientId, TO_SERVER } from "../chat/protocol.js";
import { TypingSender } from "../chat/typing.js";
import { send } from "./link.js";
import { csrfToken, wireReplyPicker } from "./replies.js";
import { attachUrl, maxChars, outbox } from "./state.js";

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
  wireFilePicking({
    button: form.querySelector(".attach-btn"),
    input: form.querySelector(".attach-input"),
    targets: [pane.querySelector(".transcript"), form],
    canSend: () => !form.hidden, // only while the agent holds the chat
    // In note mode the file stays internal, as the note would: the visitor never sees it.
    send: (file) =>
      uploadFile({
        url: attachUrl(c.id),
        file,
        headers: { "X-CSRFToken": csrfToken() },
        fields: { internal: internal.checked },
        statusEl: pane.querySelector(".composer-status"),
        errorEl: pane.querySelector(".reply-error"),
      }),
  });
  wireReplyPicker(pane, c, textarea); // before Enter-to-send: Enter picks while the list is open
  submitOnEnter(textarea, form);
}

export function showComposerError(pane, text) {
  pane.querySelector(".reply-error").textContent = text;
}
