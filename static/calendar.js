// The calendar view (ui_templates/calendar.html): drag an item to another day (in a week of
// datetimes, to another hour) to reschedule it. The move is posted with the page's CSRF
// header and the record's version; the server saves it through the records service and
// answers with the grid again (with the refusal on it when refused: a stale version, no
// permission, a rule), which replaces the grid. Without script, or from the keyboard, each
// item is a link to its record, whose edit form changes the date.
(function () {
  "use strict";

  var root = document.querySelector("[data-calendar-root]");
  if (!root) {
    return;
  }
  var headers = {};
  try {
    headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  } catch (e) {
    headers = {};
  }
  var dragged = null;

  function grid() {
    return root.querySelector("[data-calendar]");
  }

  function clearTargets() {
    root.querySelectorAll(".drop-target").forEach(function (c) {
      c.classList.remove("drop-target");
    });
  }

  function showError(text) {
    var box = grid();
    var old = box.querySelector(".cal-error");
    if (old) {
      old.remove();
    }
    var p = document.createElement("p");
    p.className = "alert cal-error";
    p.setAttribute("role", "alert");
    p.textContent = text; // text, never HTML
    box.querySelector(".cal-messages").after(p);
  }

  function swap(html, itemId) {
    // DOMParser builds an inert document: nothing in it runs.
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById("calendar-grid");
    if (!fresh) {
      return false;
    }
    var node = document.importNode(fresh, true);
    grid().replaceWith(node);
    if (window.htmx) {
      window.htmx.process(node); // its month and week links
    }
    var moved = document.getElementById(itemId);
    var link = moved && moved.querySelector("a");
    if (link) {
      link.focus();
    }
    return true;
  }

  function send(item, cell) {
    var box = grid();
    var data = new URLSearchParams();
    data.set("field", box.getAttribute("data-field"));
    data.set("date", cell.getAttribute("data-date"));
    if (cell.hasAttribute("data-hour")) {
      data.set("hour", cell.getAttribute("data-hour"));
    }
    data.set("version", item.getAttribute("data-version"));
    var url = "/e/" + encodeURIComponent(box.getAttribute("data-entity")) + "/" +
      encodeURIComponent(item.getAttribute("data-id")) + "/reschedule?" +
      box.getAttribute("data-state");
    var origin = item.parentNode;
    var list = cell.querySelector(".cal-items");
    if (list) {
      list.appendChild(item); // at once; the answer redraws the grid as saved
    }
    function putBack() {
      item.removeAttribute("aria-busy");
      if (origin) {
        origin.appendChild(item);
      }
      showError(box.getAttribute("data-network-error"));
    }
    item.setAttribute("aria-busy", "true");
    var extra = Object.assign({}, headers, {
      "HX-Request": "true",
      "Content-Type": "application/x-www-form-urlencoded",
    });
    fetch(url, {method: "POST", body: data, headers: extra, credentials: "same-origin"})
      .then(function (response) {
        return response.text().then(function (html) {
          if (!swap(html, item.id)) {
            putBack(); // not the grid (a proxy's error page): nothing was shown as saved
          }
        });
      })
      .catch(putBack);
  }

  root.addEventListener("dragstart", function (event) {
    var item = event.target.closest && event.target.closest(".cal-item[draggable=true]");
    if (!item) {
      return;
    }
    dragged = item;
    item.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.id);
  });

  root.addEventListener("dragend", function () {
    if (dragged) {
      dragged.classList.remove("dragging");
    }
    dragged = null;
    clearTargets();
  });

  root.addEventListener("dragover", function (event) {
    var cell = event.target.closest && event.target.closest("td[data-date]");
    if (!dragged || !cell) {
      return;
    }
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    if (!cell.classList.contains("drop-target")) {
      clearTargets();
      cell.classList.add("drop-target");
    }
  });

  root.addEventListener("drop", function (event) {
    var cell = event.target.closest && event.target.closest("td[data-date]");
    if (!dragged || !cell) {
      return;
    }
    event.preventDefault();
    var item = dragged;
    clearTargets();
    var sameDay = cell.getAttribute("data-date") === item.getAttribute("data-date");
    var sameHour = !cell.hasAttribute("data-hour") ||
      cell.getAttribute("data-hour") === item.getAttribute("data-hour");
    if (!(sameDay && sameHour)) {
      send(item, cell);
    }
  });
})();
