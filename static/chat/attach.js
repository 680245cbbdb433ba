/* Sending a file, on the visitor page and in the console's panes: a picker button and
   drag-and-drop onto the transcript or the composer; "Sending file…" while it goes, and the
   server's reason in the composer's error line when it is refused. The file then comes back
   on the socket as a message, like any other, so nothing here draws it. */

const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");

// A file dropped beside a drop target would make the browser leave the page to show it.
for (const kind of ["dragover", "drop"]) {
  window.addEventListener(kind, (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
}

/** The picker button opens the (visually hidden) file input; a chosen or dropped file goes to
    `send(file)` while `canSend()` says the chat takes files. */
export function wireFilePicking({ button, input, targets, canSend, send }) {
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    const [file] = input.files;
    input.value = ""; // the same file may be chosen again
    if (file && canSend()) send(file);
  });
  for (const target of targets) {
    target.addEventListener("dragover", (event) => {
      if (!hasFiles(event) || !canSend()) return;
      event.preventDefault(); // a drop target
      event.dataTransfer.dropEffect = "copy";
      target.classList.add("drop-target");
    });
    target.addEventListener("dragleave", () => target.classList.remove("drop-target"));
    target.addEventListener("drop", (event) => {
      target.classList.remove("drop-target");
      if (!hasFiles(event)) return;
      event.preventDefault(); // never let the browser open the file instead
      const [file] = event.dataTransfer.files;
      if (file && canSend()) send(file);
    });
  }
}

async function refusal(response) {
  try {
    const data = await response.json();
    if (data?.error?.message) return data.error.message;
  } catch {
    // not JSON: a proxy's page
  }
  return `The file could not be sent (error ${response.status}).`;
}

/** POST the file as multipart (field "file", plus `fields`) with `headers`; `statusEl` shows
    that it is being sent, `errorEl` why it was not. Resolves to whether it was stored. */
export async function uploadFile({ url, file, headers, fields = {}, statusEl, errorEl }) {
  const body = new FormData();
  body.append("file", file);
  for (const [name, value] of Object.entries(fields)) body.append(name, value);
  errorEl.textContent = "";
  statusEl.textContent = `Sending file ${file.name}…`;
  try {
    // No cookie: the credential is in `headers` (the visitor's token, or the CSRF token that
    // goes with the console's session, which the console sends as "same-origin").
    const response = await fetch(url, {
      method: "POST",
      body,
      headers,
      credentials: headers["X-CSRFToken"] ? "same-origin" : "omit",
    });
    if (response.ok) return true;
    errorEl.textContent = await refusal(response);
  } catch {
    errorEl.textContent = "The file could not be sent. Check your connection and try again.";
  } finally {
    statusEl.textContent = "";
  }
  return false;
}
