// Line-item grids (ui_templates/line_grid.html): add a row from the template, remove one,
// move one up or down. The server computes every total: after each change the form's live
// preview runs again (a "change" event on the form, which its hx-trigger listens to).
(function () {
  function refresh(form) {
    if (form && window.htmx) window.htmx.trigger(form, "change");
  }

  function visibleRows(body) {
    return Array.from(body.querySelectorAll("tr[data-line]")).filter(function (r) {
      return !r.hidden;
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button");
    if (!button) return;
    const grid = button.closest(".line-grid");
    if (!grid) return;
    const form = grid.closest("form");
    const body = grid.querySelector("#line-rows");
    if (button.hasAttribute("data-line-add")) {
      const key = grid.getAttribute("data-next");
      grid.setAttribute("data-next", String(Number(key) + 1));
      const template = grid.querySelector("#line-template");
      const holder = document.createElement("tbody");
      holder.innerHTML = template.innerHTML.split("__i__").join(key);
      const row = holder.firstElementChild;
      body.appendChild(row);
      if (window.htmx) window.htmx.process(row);
      const first = row.querySelector("input:not([type=hidden]), select, textarea");
      if (first) first.focus();
      refresh(form);
      return;
    }
    const row = button.closest("tr[data-line]");
    if (!row) return;
    if (button.hasAttribute("data-line-remove")) {
      const existing = row.querySelector('input[name$="-id"]');
      if (existing) {
        row.querySelector("[data-line-delete]").value = "1";
        row.hidden = true;
      } else {
        row.remove();
      }
      refresh(form);
    } else if (button.hasAttribute("data-line-up") || button.hasAttribute("data-line-down")) {
      const rows = visibleRows(body);
      const at = rows.indexOf(row);
      if (button.hasAttribute("data-line-up") && at > 0) {
        body.insertBefore(row, rows[at - 1]);
      } else if (button.hasAttribute("data-line-down") && at >= 0 && at < rows.length - 1) {
        body.insertBefore(row, rows[at + 1].nextSibling);
      }
      button.focus();
      refresh(form);
    }
  });
})();
