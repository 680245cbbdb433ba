/* The queue card: the chats waiting in the agent's groups, each with a Take button; clicking a
   chat's details previews its transcript. */
import { bdi, el } from "../chat/dom.js";
import { TO_SERVER } from "../chat/protocol.js";
import { minutes, tierPath } from "./format.js";
import { send } from "./link.js";

const queueList = document.getElementById("queue-list");
const queueCount = document.getElementById("queue-count");

export function renderQueue(items) {
  queueCount.textContent = items.length;
  if (!items.length) {
    queueList.replaceChildren(el("li", { className: "empty", textContent: "No chats waiting." }));
    return;
  }
  queueList.replaceChildren(...items.map(queueItem));
}

function queueItem(q) {
  const info = el("div", { className: "queue-info", title: "Preview the transcript" }, [
    el("strong", {}, [bdi(q.visitor)]),
    el("span", { className: "muted small" }, [" · ", bdi(q.topic)]),
    el("div", {
      className: "muted small",
      textContent:
        `#${q.position} in ${q.team} · waiting ${minutes(q.waited_seconds)}` +
        ` · ${tierPath(q.tier_path)}`,
    }),
  ]);
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
}
