// The transcript's Print button: the browser's own print dialog (the page's print styles
// leave out the navigation and the buttons).
for (const button of document.querySelectorAll("[data-print]")) {
  button.addEventListener("click", () => window.print());
}
