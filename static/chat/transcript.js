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
  if (m.kind === "internal") who.append(m.event === "consult" ? " (consult)" : " (internal note)");
  return who;
}

/** Notices to the agents only that read as what happened, not as anyone's note: the visitor
    left the chat (their End, or their page stopped answering). */
const AGENT_NOTICES = new Set(["visitor_left"]);

function lineClass(m) {
  if (m.kind === "internal" && AGENT_NOTICES.has(m.event)) return "msg msg-system msg-notice";
  // A consult's thread (an internal thread with a colleague): internal, marked as the thread.
  if (m.kind === "internal" && m.event === "consult") return "msg msg-internal msg-consult";
  return `msg msg-${m.kind}`;
}

/** "1.5 KB", as the server's filesizeformat shows it. */
export function formatBytes(size) {
  const units = [
    ["GB", 1024 ** 3],
    ["MB", 1024 ** 2],
    ["KB", 1024],
  ];
  for (const [unit, scale] of units) {
    if (size >= scale) return `${(size / scale).toFixed(1)} ${unit}`;
  }
  return size === 1 ? "1 byte" : `${size} bytes`;
}

/** A file: a preview for an image (its alt text the file's name), the name as a link, the
    size; as templates/chat/_attachment.html renders it. */
export function attachmentBox(file) {
  const box = el("div", { className: "attachment", dataset: { type: file.type } });
  const open = { href: file.url, target: "_blank", rel: "noopener" };
  if (file.image) {
    const preview = el("img", { className: "attachment-preview", src: file.url, alt: file.name });
    preview.loading = "lazy";
    box.append(el("a", open, [preview]));
  }
  const link = el("a", { ...open, className: "attachment-link" }, [bdi(file.name)]);
  if (!file.image) link.download = "";
  box.append(
    link,
    el("span", { className: "attachment-size muted small", textContent: formatBytes(file.size) }),
  );
  return box;
}

/** A preview that loads after its line was added makes the line taller: a transcript that was
    at its end (give or take that preview) stays at its end. */
export function followImages(list) {
  list.addEventListener(
    "load",
    (event) => {
      if (event.target.tagName !== "IMG") return;
      const below = list.scrollHeight - list.scrollTop - list.clientHeight;
      if (below <= event.target.offsetHeight + 48) list.scrollTop = list.scrollHeight;
    },
    true, // load does not bubble: listen on the way down
  );
}

/** One transcript line, as templates/chat/room.html renders it on the server. */
export function messageItem(m) {
  const className = lineClass(m);
  const li = el("li", { className, dataset: { seq: m.seq, event: m.event || "" } });
  if (!className.includes("msg-system")) li.append(author(m));
  li.append(
    el("time", { dateTime: m.at, textContent: formatTime(m.at) }),
    m.attachment
      ? attachmentBox(m.attachment)
      : el("div", { className: "text", dir: "auto", textContent: m.text }),
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
