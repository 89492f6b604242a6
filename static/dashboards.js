// Dashboards (ui_templates/_dashboard_grid.html): each widget loads with htmx as its own
// request. One the server refused because the user already has as many requests running as
// one user may (429, settings.yaml requests_per_user) asks again a moment later, so a
// dashboard of more widgets than that still loads them all; a widget that cannot be loaded
// says so in its place (its heading still links to the report). A file, never inline
// script: pages run under a Content-Security-Policy.
(function () {
  "use strict";
  var MAX_TRIES = 20;

  document.addEventListener("htmx:responseError", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.matches || !elt.matches(".widget-body[data-failed]")) return;
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    var tries = Number(elt.getAttribute("data-tries") || "0");
    if (status === 429 && tries < MAX_TRIES) {
      elt.setAttribute("data-tries", String(tries + 1));
      setTimeout(function () { window.htmx.trigger(elt, "retry"); }, 300 + 200 * tries);
      return;
    }
    var note = document.createElement("p");
    note.className = "alert widget-failed";
    note.setAttribute("role", "status");
    note.textContent = elt.getAttribute("data-failed");
    elt.replaceChildren(note);
  });
})();
