/* The pane's Visitor panel: who the visitor is, what they answered on the start form, where
   they came from, their browser and system, their local time (computed here, from the time
   zone their browser sent), the attributes the widget set, and their earlier chats. Every value
   goes in as text (never HTML), long ones cut with the whole value on hover. */
import { bdi, el } from "../chat/dom.js";

const SHOWN_CHARS = 80;

/** A visitor value: cut to SHOWN_CHARS, the whole of it in the tooltip. */
function value(text) {
  const full = String(text ?? "");
  if (full.length <= SHOWN_CHARS) return bdi(full);
  return bdi(`${full.slice(0, SHOWN_CHARS - 1)}…`, { title: full });
}

/** "Tue 14:05 (Europe/Paris)" now for the visitor, from their time zone or else their offset. */
export function localTime(zone, offsetMinutes, now = new Date()) {
  const options = { weekday: "short", hour: "2-digit", minute: "2-digit" };
  if (zone) {
    try {
      const time = new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone }).format(now);
      return `${time} (${zone})`;
    } catch {
      /* not a zone this browser knows: the offset below */
    }
  }
  if (typeof offsetMinutes !== "number") return "";
  const shifted = new Date(now.getTime() + offsetMinutes * 60000);
  const time = new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" }).format(shifted);
  const sign = offsetMinutes < 0 ? "−" : "+";
  const abs = Math.abs(offsetMinutes);
  const hours = `${Math.floor(abs / 60)}`.padStart(2, "0");
  return `${time} (UTC${sign}${hours}:${`${abs % 60}`.padStart(2, "0")})`;
}

function formatDay(iso) {
  const options = { year: "numeric", month: "short", day: "numeric" };
  return new Date(iso).toLocaleDateString([], options);
}

function row(term, ...description) {
  return [el("dt", { textContent: term }), el("dd", {}, description)];
}

/** The facts the visitor's browser sent, where it sent them. */
function browserRows(d) {
  const rows = [];
  if (d.page) rows.push(...row("Page", value(d.page)));
  if (d.page_title) rows.push(...row("Page title", value(d.page_title)));
  if (d.referrer) rows.push(...row("Referrer", value(d.referrer)));
  if (d.browser || d.os) {
    const what = `${d.browser || "Unknown browser"} on ${d.os || "an unknown system"}`;
    rows.push(...row("Browser", bdi(what, { title: d.user_agent || "" })));
  }
  if (d.language) rows.push(...row("Language", value(d.language.split(",")[0])));
  const time = el("span", { className: "visitor-time" });
  time.dataset.zone = d.time_zone || "";
  time.dataset.offset = d.utc_offset_minutes ?? "";
  time.textContent = localTime(d.time_zone, d.utc_offset_minutes ?? undefined) || "–";
  rows.push(...row("Local time", time));
  return rows;
}

function previousChat(p) {
  return el("li", {}, [
    el("a", { href: p.url, target: "_blank", rel: "noopener" }, [`Chat ${p.chat}`]),
    " · ",
    el("time", { dateTime: p.created_at, textContent: formatDay(p.created_at) }),
    " · ",
    value(p.topic),
    ` · ${p.status}`,
  ]);
}

/** Fill the pane's panel from the `details` of a `chat.info` frame. */
export function showVisitor(pane, d) {
  const box = pane.querySelector(".visitor-panel");
  box.hidden = !d;
  if (!d) return;
  const rows = [
    ...row("Name", value(d.name)),
    ...row("E-mail", d.email ? value(d.email) : "–"),
    ...row("Topic", value(d.topic)),
    ...(d.fields || []).flatMap((f) => row(f.label, value(f.value))),
    ...browserRows(d),
    ...(d.attributes || []).flatMap((a) => row(a.name, value(a.value))),
  ];
  const previous = (d.previous || []).map(previousChat);
  box.querySelector(".visitor-facts").replaceChildren(...rows);
  const none = el("li", { className: "muted", textContent: "None" });
  box.querySelector(".visitor-previous").replaceChildren(...(previous.length ? previous : [none]));
}

/** Keep the shown local times current (one timer for every pane). */
setInterval(() => {
  for (const time of document.querySelectorAll(".visitor-time")) {
    const offset = time.dataset.offset === "" ? undefined : Number(time.dataset.offset);
    time.textContent = localTime(time.dataset.zone, offset) || "–";
  }
}, 30000);
