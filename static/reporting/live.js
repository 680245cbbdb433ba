/* The live view (/reports/live/): the server draws the first state; the socket (/ws/live/) sends
   a whole fresh snapshot whenever something changed, and on every (re)connect, so a page that
   was away is current again at once. Waits and durations run on here, every second, from the
   snapshot's timestamps against the server's clock: nothing is sent while nothing changes. The
   markup built here is the template's (templates/reporting/live.html). */

import { bdi, el } from "../chat/dom.js";
import { PING_INTERVAL_MS, socketUrl, TO_SERVER } from "../chat/protocol.js";
import { ReconnectingSocket } from "../chat/socket.js";

const root = document.getElementById("live");
const $ = (id) => document.getElementById(id);

/** Milliseconds to add to this browser's clock to read the server's (set by each snapshot). */
let clockOffset = Date.parse(root.dataset.now) - Date.now();

/** 120 → "2 min 0 s", as the server's `duration` filter (reporting/flowwords.py) says it. */
export function duration(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${secs} s`;
  return `${secs} s`;
}

function secondsSince(iso) {
  return (Date.now() + clockOffset - Date.parse(iso)) / 1000;
}

function age(since, seconds) {
  return el("span", { className: "age", textContent: duration(seconds), dataset: { since } });
}

function emptyRow(columns, text) {
  return el("tr", {}, [el("td", { colSpan: columns, className: "empty", textContent: text })]);
}

function chatLink(c) {
  return el("a", { href: c.url }, [bdi(c.visitor)]);
}

function stageRow(s) {
  const oldest = el("td", { className: "stage-oldest" });
  if (s.oldest_since) {
    const meter = el("meter", {
      min: 0,
      max: s.timeout_seconds,
      low: Math.round(s.timeout_seconds / 2),
      high: Math.round((s.timeout_seconds * 3) / 4),
      optimum: 0,
      value: s.oldest_seconds,
      textContent: String(s.oldest_seconds),
      dataset: { since: s.oldest_since },
    });
    meter.setAttribute("aria-label", `Oldest wait at ${s.name}, of its timeout`);
    oldest.append(
      meter,
      " ",
      age(s.oldest_since, s.oldest_seconds),
      ` of ${duration(s.timeout_seconds)}`,
    );
  } else {
    oldest.append(
      el("span", { className: "muted", textContent: "No chats waiting" }),
      ` · timeout ${duration(s.timeout_seconds)}`,
    );
  }
  const row = el("tr", { dataset: { stage: s.id } }, [
    el("th", { scope: "row" }, [
      bdi(s.name),
      " ",
      el("span", { className: "muted small" }, ["· ", bdi(s.pipeline)]),
    ]),
    el("td", {}, [bdi(s.tier)]),
    el("td", { className: "num stage-waiting", textContent: String(s.waiting) }),
    oldest,
    el("td", { className: "num stage-offers", textContent: String(s.offers) }),
  ]);
  if (s.waiting) row.className = "has-waiting";
  return row;
}

function waitingItem(w) {
  return el("li", { dataset: { chat: w.chat } }, [
    chatLink(w),
    " ",
    el("span", { className: "muted" }, ["at ", bdi(w.stage), ", waiting"]),
    " ",
    age(w.since, w.seconds),
  ]);
}

function agentRow(a) {
  const load = el("meter", {
    min: 0,
    max: a.capacity,
    value: a.load,
    textContent: String(a.load),
  });
  load.setAttribute("aria-label", `Load of ${a.name}`);
  const chats = a.chats.length
    ? a.chats.map((c) =>
        el("li", { dataset: { chat: c.chat } }, [
          chatLink(c),
          c.joined ? " (joined to take over) " : " ",
          age(c.since, c.seconds),
        ]),
      )
    : [el("li", { className: "empty", textContent: "No chats" })];
  return el("tr", { className: `presence-${a.presence}`, dataset: { agent: a.id } }, [
    el("th", { scope: "row" }, [bdi(a.name)]),
    el("td", {}, [
      el("span", { className: "presence-dot", ariaHidden: "true" }),
      ` ${a.presence_label}`,
    ]),
    el("td", { className: "agent-load" }, [load, ` ${a.load} of ${a.capacity}`]),
    el("td", {}, [el("ul", { className: "live-chats" }, chats)]),
  ]);
}

/** Only what changed is touched in the summary, so that a screen reader hears the counts that
    moved and nothing else (the tiles are a polite live region). */
function setText(id, text) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

function drawServiceLevel(sl) {
  const within = duration(sl.target_seconds);
  setText("live-sl", sl.counted ? `${sl.percent} %` : "–");
  setText(
    "live-sl-detail",
    sl.counted
      ? `${sl.met} of ${sl.counted} chats answered within ${within}`
      : `No chats to count yet today (target: answered within ${within})`,
  );
}

function draw(live) {
  clockOffset = Date.parse(live.now) - Date.now();
  root.dataset.now = live.now;
  setText("live-day", live.day);
  setText("live-waiting-total", String(live.waiting_total));
  setText("live-offers-total", String(live.offers));
  setText("live-online", String(live.online));
  drawServiceLevel(live.service_level);
  $("live-stages").replaceChildren(
    ...(live.stages.length
      ? live.stages.map(stageRow)
      : [emptyRow(5, "No stages are configured yet.")]),
  );
  $("live-waiting").replaceChildren(
    ...(live.waiting.length
      ? live.waiting.map(waitingItem)
      : [el("li", { className: "empty", textContent: "No chats waiting." })]),
  );
  const more = $("live-waiting-more");
  more.hidden = live.waiting_total <= live.waiting.length;
  more.textContent = `The oldest ${live.waiting.length} of ${live.waiting_total} are listed.`;
  $("live-agents").replaceChildren(
    ...(live.agents.length ? live.agents.map(agentRow) : [emptyRow(4, "No agents yet.")]),
  );
}

/** Every wait and duration on the page, one second on. */
function tick() {
  for (const node of root.querySelectorAll("[data-since]")) {
    const seconds = secondsSince(node.dataset.since);
    if (node.tagName === "METER") node.value = seconds;
    else node.textContent = duration(seconds);
  }
}

const socket = new ReconnectingSocket({
  url: () => socketUrl("/ws/live/"),
  stateEl: $("conn"),
  onFrame: (frame) => {
    if (frame.type === "live") draw(frame);
  },
});

setInterval(tick, 1000);
setInterval(() => socket.send({ type: TO_SERVER.PING }), PING_INTERVAL_MS);
