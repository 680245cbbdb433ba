/* A pane's Escalate button and dialog: the targets the server offers for the chat's stage, a
   reason and a hand-over note. */
import { el } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { colleagueChoices, colleagueRequest } from "./handover.js";
import { send } from "./link.js";

export function wireEscalation(pane, c) {
  const dialog = pane.querySelector(".esc-dialog");
  pane.querySelector(".esc-btn").addEventListener("click", () => {
    send({ type: TO_SERVER.ESCALATION_OPTIONS, chat: c.id });
  });
  pane.querySelector(".esc-cancel").addEventListener("click", () => dialog.close());
  pane.querySelector(".esc-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const picked = dialog.querySelector("input[name=target]:checked");
    if (!picked) {
      showDialogError(dialog, "Choose a target.");
      return;
    }
    showDialogError(dialog, "");
    const reason = dialog.querySelector(".esc-reason").value;
    const note = dialog.querySelector(".esc-note").value;
    const toColleague = colleagueRequest(dialog, picked, c, reason, note);
    if (toColleague) send(toColleague);
    else send({ type: TO_SERVER.ESCALATE, chat: c.id, target: picked.value, reason, note });
  });
}

/** The server's answer to the Escalate button: fill the dialog and show it. */
export function showOptions(pane, f) {
  const dialog = pane.querySelector(".esc-dialog");
  const box = dialog.querySelector(".esc-targets");
  box.replaceChildren(el("legend", { textContent: "Target" }));
  if (!f.options.length) {
    const none = "No escalation targets are configured for this stage.";
    box.append(el("p", { className: "muted", textContent: none }));
  }
  box.append(...f.options.map(targetChoice), ...colleagueChoices(f));
  const reasons = f.reasons.map((r) => el("option", { value: r, textContent: r }));
  const reason = dialog.querySelector(".esc-reason");
  reason.replaceChildren(el("option", { value: "", textContent: "(none)" }), ...reasons);
  showDialogError(dialog, "");
  if (!dialog.open) dialog.showModal();
}

function targetChoice(o) {
  const input = el("input", { type: "radio", name: "target", value: o.keyword });
  input.dataset.noteRequired = o.note_required;
  return el("label", { className: "inline esc-target" }, [
    input,
    el("span", {
      textContent: `${o.label} · ${o.tier} · ${o.available} online and free${o.warm ? " · warm" : ""}`,
    }),
    el("code", { className: "muted small", textContent: ` /escalate ${o.keyword}` }),
  ]);
}

export function closeDialog(pane) {
  const dialog = pane.querySelector(".esc-dialog");
  if (dialog.open) dialog.close();
}

/** Show an error in the pane's dialog if it is open; false if it is not. */
export function dialogError(pane, text) {
  const dialog = pane.querySelector(".esc-dialog");
  if (!dialog.open) return false;
  showDialogError(dialog, text);
  return true;
}

function showDialogError(dialog, text) {
  dialog.querySelector(".esc-error").textContent = text;
}
