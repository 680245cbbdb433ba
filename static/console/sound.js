/* The alert sound: a short two-note chime made with WebAudio (no audio file), on by default,
   switched off or on per agent with the "Sound alerts" box (remembered in this browser). */
// Per agent: two agents taking turns at one browser keep their own choice.
const STORAGE_KEY = `tierline.console.sound.${document.getElementById("console").dataset.agent}`;
const QUIET_MS = 1500; // a burst of alerts chimes once
const toggle = document.getElementById("sound-alerts");
let context = null;
let lastAt = 0;

export function wireSound() {
  toggle.checked = readSetting() !== "off";
  toggle.addEventListener("change", () => {
    writeSetting(toggle.checked ? "on" : "off");
    if (toggle.checked) chime(); // let the agent hear what it sounds like
  });
  // Browsers let a page make sound only after a gesture on it: start the audio on the first.
  for (const type of ["pointerdown", "keydown"]) {
    document.addEventListener(type, unlock, { capture: true, once: true });
  }
}

function readSetting() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage blocked: the default (on)
  }
}

function writeSetting(value) {
  try {
    localStorage.setItem(STORAGE_KEY, value);
  } catch {
    // storage blocked: the switch holds for this page only
  }
}

function unlock() {
  const AudioContext = window.AudioContext || window.webkitAudioContext;
  if (!context && AudioContext) context = new AudioContext();
  context?.resume();
}

/** Play the chime if sound is on and the page may make sound; true if it played. */
export function chime() {
  const now = Date.now();
  if (!toggle.checked || context?.state !== "running" || now - lastAt < QUIET_MS) return false;
  lastAt = now;
  const t = context.currentTime;
  const gain = context.createGain();
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.15, t + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.35);
  gain.connect(context.destination);
  const tone = context.createOscillator();
  tone.type = "sine";
  tone.frequency.setValueAtTime(880, t);
  tone.frequency.setValueAtTime(660, t + 0.12);
  tone.connect(gain);
  tone.start(t);
  tone.stop(t + 0.36);
  return true;
}
