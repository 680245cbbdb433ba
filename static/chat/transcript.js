/* Transcript lines, on the visitor page and in the console's panes, and times shown in the
   reader's own time zone. */
import { bdi, el } from "./dom.js";

export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

/** Server-rendered times are in the site's time zone; show every time in the reader's own. */
export function localizeTimes(root) {
  for (const time of root.querySelectorAll("time[datetime]")) {
    time.textContent = formatTime(time.dateTime);
  }
}

function author(m) {
  const who = el("span", { className: "who" }, [bdi(m.author)]);
  if (m.kind === "internal") who.append(" (internal note)");
  return who;
}

/** Notices to the agents only that read as what happened, not as anyone's note: the visitor
    left the chat (their End, or their page stopped answering). */
const AGENT_NOTICES = new Set(["visitor_left"]);

function lineClass(m) {
  if (m.kind === "internal" && AGENT_NOTICES.has(m.event)) return "msg msg-system msg-notice";
  return `msg msg-${m.kind}`;
}

/** One transcript line, as templates/chat/room.html renders it on the server. */
export function messageItem(m) {
  const className = lineClass(m);
  const li = el("li", { className, dataset: { seq: m.seq, event: m.event || "" } });
  if (!className.includes("msg-system")) li.append(author(m));
  li.append(
    el("time", { dateTime: m.at, textContent: formatTime(m.at) }),
    el("div", { className: "text", dir: "auto", textContent: m.text }),
  );
  return li;
}

/** Add a line to a transcript. "Still searching" notices are all stored (and replayed), but a run
    of them shows as one line: the latest replaces the one before it. */
export function appendMessage(list, m) {
  const last = list.lastElementChild;
  if (m.event === "still_searching" && last?.dataset.event === "still_searching") last.remove();
  list.append(messageItem(m));
}

/** The same for a transcript rendered by the server: keep the last of each run. */
export function collapseSearching(list) {
  for (const li of list.querySelectorAll('li[data-event="still_searching"]')) {
    if (li.nextElementSibling?.dataset.event === "still_searching") li.remove();
  }
}
