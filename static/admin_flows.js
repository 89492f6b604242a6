// The flows admin page (ui_templates/admin_flows.html): a dry run's answer replaces the
// result box even when it is a 4xx (a bad question, named in the answer); htmx leaves
// error answers unswapped otherwise.
document.addEventListener("htmx:beforeSwap", function (event) {
  var status = event.detail.xhr.status;
  if (event.detail.target && event.detail.target.id === "flow-test-result" && status >= 400 && status < 500) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
