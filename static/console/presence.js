/* The agent's presence: the select, and why the server changed it (auto-away after lapsed
   offers), which the agent must see. */
import { TO_SERVER } from "../chat/protocol.js";
import { clear, PRESENCE_KEY, raise } from "./alerts.js";
import { send } from "./link.js";
import { chime } from "./sound.js";

const root = document.getElementById("console");
const select = document.getElementById("presence");
const notice = document.getElementById("presence-notice");

export function wirePresence() {
  select.addEventListener("change", () => {
    send({ type: TO_SERVER.PRESENCE, presence: select.value });
  });
}

/** The presence now; `reason` is set when the server changed it, not the agent. */
export function showPresence(presence, reason = "") {
  select.value = presence;
  root.dataset.presence = presence;
  notice.hidden = !reason;
  notice.textContent = reason ? `You were set ${presence}: ${reason}.` : "";
  if (!reason) {
    clear(PRESENCE_KEY);
    return;
  }
  // On screen the notice is seen at once: a chime, nothing to count.
  if (document.hidden) raise(PRESENCE_KEY, { title: `You were set ${presence}`, body: reason });
  else chime();
}

/** The agent looked at the console: the notice stays, the alert is counted no more. */
export function presenceSeen() {
  clear(PRESENCE_KEY);
}
