/* The queue card: the chats waiting in the agent's groups, each with a Take button; clicking a
   chat's details previews its transcript. */
import { bdi, clickOnKeys, el, redrawKeepingFocus } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { minutes, tierPath } from "./format.js";
import { send } from "./link.js";
import { claimed } from "./state.js";

const queueList = document.getElementById("queue-list");
const queueCount = document.getElementById("queue-count");

// The waiting chats this console shows, by chat id. Full lists replace them (on connect, on
// request, after a resync); between those, each queue change arrives alone as a delta.
const items = new Map();

/** Replace the whole list (hello, a `queue` answer). */
export function setQueue(list) {
  items.clear();
  for (const item of list) remember(item);
  renderQueue();
}

export function addQueueItem(item) {
  remember(item);
  renderQueue();
}

export function removeQueueItem(chatId) {
  if (items.delete(chatId)) renderQueue();
}

function remember(item) {
  items.set(item.chat, { ...item, receivedAt: Date.now() });
}

/** The stage's queue order: priority first, then the longest waiting, then the entry. */
function byQueueOrder(a, b) {
  return (
    a.stage_id - b.stage_id ||
    b.priority - a.priority ||
    Date.parse(a.waiting_since) - Date.parse(b.waiting_since) ||
    a.entry - b.entry
  );
}

/** Draw the list; places count within each stage, waiting times run on in the browser. */
export function renderQueue() {
  queueCount.textContent = items.size;
  if (!items.size) {
    queueList.replaceChildren(el("li", { className: "empty", textContent: "No chats waiting." }));
    return;
  }
  const sorted = [...items.values()].sort(byQueueOrder);
  const places = new Map();
  const drawn = sorted.map((q) => {
    const place = (places.get(q.stage_id) || 0) + 1;
    places.set(q.stage_id, place);
    return queueItem(q, place);
  });
  redrawKeepingFocus(queueList, () => queueList.replaceChildren(...drawn));
}

function waited(q) {
  return q.waited_seconds + Math.floor((Date.now() - q.receivedAt) / 1000);
}

function queueItem(q, place) {
  const info = el(
    "div",
    { className: "queue-info", title: "Preview the transcript", tabIndex: 0 },
    [
      el("strong", {}, [bdi(q.visitor)]),
      el("span", { className: "muted small" }, [" · ", bdi(q.topic)]),
      el("div", {
        className: "muted small",
        textContent:
          `#${place} in ${q.team} · waiting ${minutes(waited(q))}` + ` · ${tierPath(q.tier_path)}`,
      }),
    ],
  );
  info.setAttribute("role", "button");
  if (q.handover) info.append(handoverLine(q.handover));
  return el("li", { className: "queue-item", dataset: { chat: q.chat } }, [info, takeButton(q)]);
}

/** "From Alex · Billing question: the note" */
function handoverLine(h) {
  const line = el("div", { className: "small handover-line" }, [
    "From ",
    bdi(h.from_agent || h.requested_by),
  ]);
  if (h.reason) line.append(" · ", bdi(h.reason));
  if (h.note) line.append(": ", bdi(h.note));
  return line;
}

function takeButton(q) {
  const take = el("button", { type: "button", textContent: "Take", className: "take-btn" });
  take.addEventListener("click", () => {
    take.disabled = true;
    claimed.add(q.chat);
    send({ type: TO_SERVER.TAKE, chat: q.chat });
  });
  return take;
}

/** After a refused take, every Take button works again. */
export function enableTakeButtons() {
  for (const button of queueList.querySelectorAll("button.take-btn")) button.disabled = false;
}

/** Call `open(chatId)` when a waiting chat's details are clicked. */
export function onPreview(open) {
  queueList.addEventListener("click", (event) => {
    const info = event.target.closest(".queue-info");
    if (info) open(Number(info.parentElement.dataset.chat));
  });
  clickOnKeys(queueList, ".queue-info");
}
