/* The offers card: chats offered to this agent (broadcast, or a hunt with a countdown) to accept
   or decline. */
import { bdi, el } from "../chat/dom.js";
import { ERROR, TO_SERVER } from "../chat/protocol.js";
import { keepOffers } from "./alerts.js";
import { minutes, tierPath } from "./format.js";
import { send } from "./link.js";
import { claimed } from "./state.js";
import { showToast } from "./toast.js";

const offerList = document.getElementById("offer-list");
const offersCount = document.getElementById("offers-count");
const offers = new Map(); // offer id -> offer frame, with `until` (local clock) for hunts
const REF_PREFIX = "offer-"; // the `ref` of an accept or decline frame: "offer-<id>"
/** Refusals that leave the offer open: the agent can try again. */
const KEEPS_OFFER = new Set([ERROR.RATE_LIMITED, ERROR.NOT_ONLINE, ERROR.AT_CAPACITY]);

export function setOffers(list) {
  offers.clear();
  for (const o of list || []) addOffer(o);
  renderOffers();
}

export function addOffer(o) {
  // The countdown runs on this browser's clock from the seconds left when the server sent it.
  const until = o.accept_seconds === null ? null : Date.now() + o.accept_seconds * 1000;
  offers.set(o.offer, { ...o, until });
}

export function dropOffer(id) {
  offers.delete(id);
  renderOffers();
}

function secondsLeft(o) {
  return Math.max(0, Math.ceil((o.until - Date.now()) / 1000));
}

export function renderOffers() {
  keepOffers([...offers.keys()]);
  offersCount.textContent = offers.size;
  if (!offers.size) {
    offerList.replaceChildren(el("li", { className: "empty", textContent: "No offers." }));
    return;
  }
  offerList.replaceChildren(...[...offers.values()].map(offerItem));
}

function offerItem(o) {
  const details = [
    el("strong", {}, [bdi(o.visitor)]),
    el("span", { className: "muted small" }, [" · ", bdi(o.topic)]),
    el("div", {
      className: "muted small",
      textContent: `${o.team} · ${tierPath(o.tier_path)} · waiting ${minutes(o.waited_seconds)}`,
    }),
  ];
  if (o.note)
    details.push(el("div", { className: "small handover-line" }, ["Note: ", bdi(o.note)]));
  if (o.until !== null) {
    details.push(el("div", { className: "small offer-countdown", textContent: countdown(o) }));
  }
  const dataset = { offer: o.offer, chat: o.chat, policy: o.policy };
  return el("li", { className: "queue-item offer-item", dataset }, [
    el("div", { className: "queue-info" }, details),
    el("div", { className: "offer-actions" }, answerButtons(o)),
  ]);
}

function answerButtons(o) {
  const accept = el("button", { type: "button", textContent: "Accept", className: "accept-btn" });
  const decline = el("button", {
    type: "button",
    textContent: "Decline",
    className: "secondary decline-btn",
  });
  const answer = (type) => {
    accept.disabled = decline.disabled = true;
    if (type === TO_SERVER.OFFER_ACCEPT) claimed.add(o.chat);
    send({ type, offer: o.offer, ref: `${REF_PREFIX}${o.offer}` });
  };
  accept.addEventListener("click", () => answer(TO_SERVER.OFFER_ACCEPT));
  decline.addEventListener("click", () => answer(TO_SERVER.OFFER_DECLINE));
  return [accept, decline];
}

function countdown(o) {
  return `${secondsLeft(o)} s to accept`;
}

/** Once a second: the hunts' countdowns. */
export function tickOffers() {
  for (const li of offerList.querySelectorAll(".offer-item")) {
    const o = offers.get(Number(li.dataset.offer));
    const line = li.querySelector(".offer-countdown");
    if (o && line) line.textContent = countdown(o);
  }
}

/** An error answering an offer: say so, and drop the offer unless it is still open. True if the
    error was about an offer. */
export function offerRefused(error) {
  if (typeof error.ref !== "string" || !error.ref.startsWith(REF_PREFIX)) return false;
  showToast(error.message);
  if (!KEEPS_OFFER.has(error.code)) offers.delete(Number(error.ref.slice(REF_PREFIX.length)));
  renderOffers();
  return true;
}
