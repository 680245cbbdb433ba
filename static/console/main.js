/* The agent console: live queue and offers, own chats with unread counts, several chat panes at
   once. This entry module connects the socket and wires the page; the cards and panes are built
   by their own modules. */
import { dispatch, PING_INTERVAL_MS, socketUrl, TO_SERVER } from "../chat/protocol.js";
import { localizeTimes } from "../chat/transcript.js";
import { onSelect } from "./chats.js";
import { handlers } from "./frames.js";
import { connect, send } from "./link.js";
import { tickOffers } from "./offers.js";
import { openChat } from "./panes.js";
import { onPreview, renderQueue } from "./queue.js";
import { chats, markRead, outbox, view } from "./state.js";

const WAITED_REDRAW_MS = 15000; // the "waiting for" times run on in the browser

/** After a (re)connect: pick up every open pane where it stopped, and resend what is owed. */
function resume() {
  for (const c of chats.values()) {
    if (c.pane) send({ type: TO_SERVER.SUBSCRIBE, chat: c.id, since: c.lastSeq });
  }
  outbox.resend(send);
}

connect({
  url: () => socketUrl("/ws/console/"),
  stateEl: document.getElementById("conn"),
  onOpen: resume,
  onFrame: (frame) => dispatch(handlers, frame),
});

const presence = document.getElementById("presence");
presence.addEventListener("change", () => {
  send({ type: TO_SERVER.PRESENCE, presence: presence.value });
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && view.activeChat) markRead(chats.get(view.activeChat));
});
onPreview(openChat);
onSelect(openChat);
setInterval(renderQueue, WAITED_REDRAW_MS);
// "Still here": an agent whose every console tab is closed or silent for AGENT_GONE_SECONDS is
// set offline so that no chat is routed to them.
setInterval(() => send({ type: TO_SERVER.PING }), PING_INTERVAL_MS);
setInterval(tickOffers, 1000);
localizeTimes(document);
