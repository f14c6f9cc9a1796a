// The UI's entry (issue #10): replaced by the app.
const app = document.getElementById("app");
if (app) app.textContent = "Weft";
