/* The start form: tell the agent which page the visitor came from (the form's hidden `page`). */
const page = document.getElementById("id_page");
if (page && !page.value) page.value = document.referrer || ""; // the widget fills it itself
