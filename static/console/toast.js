/* A passing notice at the corner of the console, for what belongs to no open pane. */
const toast = document.getElementById("toast");
let timer = null;

export function showToast(text) {
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => {
    toast.hidden = true;
  }, 6000);
}
