/* The start form. Fills its hidden fields with what the browser knows: the page the visitor came
   from, that page's title and referrer (a link or the widget may pass them as ?page=, ?title=,
   ?referrer=), and the visitor's time zone and UTC offset, so that the agent sees their local
   time. Shows the questions of the chosen topic's pipeline only, and whether that pipeline asks
   the name and requires the e-mail (the server checks the same rules). */
const params = new URLSearchParams(location.search);

function fill(id, value) {
  const input = document.getElementById(id);
  if (input && !input.value) input.value = value || "";
}

/** The page the visitor came from; not this form itself (its own reload after an error). */
function cameFrom() {
  if (!document.referrer) return "";
  const from = new URL(document.referrer);
  return from.origin === location.origin && from.pathname === location.pathname ? "" : from.href;
}

fill("id_page", params.get("page") || cameFrom());
fill("id_page_title", params.get("title"));
fill("id_referrer", params.get("referrer"));
fill("id_time_zone", Intl.DateTimeFormat().resolvedOptions().timeZone);
fill("id_utc_offset", String(-new Date().getTimezoneOffset()));

const topic = document.getElementById("id_topic");
const sections = [...document.querySelectorAll("fieldset.prechat")];

function setRequirement(wrapper, required) {
  for (const mark of wrapper?.querySelectorAll("[data-when]") || []) {
    mark.hidden = mark.dataset.when !== (required ? "required" : "optional");
  }
}

/** Show the chosen topic's questions, and its pipeline's name and e-mail rules. */
function showChosen() {
  const chosen = sections.find((s) => JSON.parse(s.dataset.topics).includes(topic.value));
  for (const section of sections) {
    section.hidden = section !== chosen || section.dataset.empty === "1";
  }
  if (!chosen) return;
  document.getElementById("name-field").hidden = chosen.dataset.asksName !== "1";
  setRequirement(document.getElementById("email-field"), chosen.dataset.requiresEmail === "1");
}

if (topic && topic.tagName === "SELECT" && sections.length) {
  topic.addEventListener("change", showChosen);
  if (topic.value) showChosen();
  else for (const s of sections) s.hidden = s.dataset.empty === "1" || sections.length > 1;
}
