/* Desktop notifications, for alerts while the console's tab is hidden. The browser asks the
   agent's permission only from a gesture: the "Desktop alerts" button. */
const button = document.getElementById("desktop-alerts");
const stateLine = document.getElementById("desktop-alerts-state");
const supported = "Notification" in window;

const PERMISSION_TEXT = {
  granted: "Desktop alerts are on while this tab is hidden.",
  denied: "Desktop alerts are blocked in this browser's site settings.",
  default: "",
};

export function wireDesktop() {
  if (!supported) {
    button.hidden = true;
    return;
  }
  drawPermission();
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    drawPermission();
  });
}

function drawPermission() {
  button.hidden = Notification.permission !== "default";
  stateLine.textContent = PERMISSION_TEXT[Notification.permission] || "";
}

/** Show a notification if the agent allowed them; `onClick` runs when it is clicked. */
export function notifyDesktop({ title, body, tag, onClick }) {
  if (!supported || Notification.permission !== "granted") return;
  const note = new Notification(title, { body, tag });
  note.addEventListener("click", () => {
    window.focus();
    onClick?.();
    note.close();
  });
}
