/* Alerts for what needs the agent: a chat given to them, an offer, a message in a chat not on
   screen, the server setting them away. Each counts in the tab title ("(2) Console · Tierline"),
   chimes, shows a desktop notification while the tab is hidden, and marks the chat's tab and
   list entry; it is cleared when the agent looks at it (or the offer is answered or gone). */
import { notifyDesktop } from "./desktop.js";
import { chime } from "./sound.js";

const baseTitle = document.title;
const pending = new Set(); // "chat:<id>", "offer:<id>", "presence"
const listeners = [];
let opener = null;

export const chatKey = (id) => `chat:${id}`;
export const offerKey = (id) => `offer:${id}`;
export const PRESENCE_KEY = "presence";

/** `listener()` runs after every change (to redraw the marks). */
export function onAlertsChange(listener) {
  listeners.push(listener);
}

/** `open(chatId)` runs when the agent clicks a chat's desktop notification. */
export function onAlertClicked(open) {
  opener = open;
}

/** Something needs the agent: count it (once per key), chime, and notify if the tab is hidden. */
export function raise(key, { title, body, chat = null }) {
  pending.add(key);
  changed();
  chime();
  if (!document.hidden) return;
  notifyDesktop({ title, body, tag: key, onClick: () => chat !== null && opener?.(chat) });
}

export function clear(key) {
  if (pending.delete(key)) changed();
}

/** Offers come and go as lists too: keep the alerts of the offers still open. */
export function keepOffers(openIds) {
  const open = new Set(openIds.map(offerKey));
  const gone = [...pending].filter((key) => key.startsWith("offer:") && !open.has(key));
  for (const key of gone) pending.delete(key);
  if (gone.length) changed();
}

export function needsAttention(chatId) {
  return pending.has(chatKey(chatId));
}

function changed() {
  document.title = pending.size ? `(${pending.size}) ${baseTitle}` : baseTitle;
  for (const listener of listeners) listener();
}
