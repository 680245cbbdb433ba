/* The agent console: live queue and offers, own chats with unread counts, several chat panes at
   once, alerts. This entry module connects the socket and wires the page; the cards and panes
   are built by their own modules. */
import { dispatch, PING_INTERVAL_MS, socketUrl, TO_SERVER } from "../chat/protocol.js";
import { localizeTimes } from "../chat/transcript.js";
import { onAlertClicked, onAlertsChange } from "./alerts.js";
import { drawChatList, onSelect } from "./chats.js";
import { describe } from "./chatstate.js";
import { onConsultSelect } from "./consult.js";
import { wireDesktop } from "./desktop.js";
import { handlers } from "./frames.js";
import { tickHandovers } from "./handover.js";
import { connect, send } from "./link.js";
import { tickOffers } from "./offers.js";
import { markTabs, openChat, seen, subscribe } from "./panes.js";
import { presenceSeen, wirePresence } from "./presence.js";
import { onPreview, renderQueue } from "./queue.js";
import { wireSound } from "./sound.js";
import { chats, outbox, view } from "./state.js";

const WAITED_REDRAW_MS = 15000; // the "waiting for" times run on in the browser

/** After a (re)connect: pick up every live pane where it stopped, and resend what is owed. A
    pane whose chat is over stays as it is: nothing more comes for it. */
function resume() {
  for (const c of chats.values()) {
    if (c.pane && !describe(c.state).isOver) subscribe(c, c.lastSeq);
  }
  outbox.resend(send);
}

connect({
  url: () => socketUrl("/ws/console/"),
  stateEl: document.getElementById("conn"),
  onOpen: resume,
  onFrame: (frame) => dispatch(handlers, frame),
});

wirePresence();
wireSound();
wireDesktop();
onAlertsChange(() => {
  drawChatList();
  markTabs();
});
onAlertClicked(openChat);
document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  presenceSeen();
  if (view.activeChat === null) return;
  seen(chats.get(view.activeChat));
  drawChatList();
});
onPreview(openChat);
onSelect(openChat);
onConsultSelect(openChat);
setInterval(renderQueue, WAITED_REDRAW_MS);
// "Still here": an agent whose every console tab is closed or silent for AGENT_GONE_SECONDS is
// set offline so that no chat is routed to them.
setInterval(() => send({ type: TO_SERVER.PING }), PING_INTERVAL_MS);
setInterval(tickOffers, 1000);
setInterval(tickHandovers, 1000);
localizeTimes(document);
