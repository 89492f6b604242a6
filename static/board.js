// The pipeline board (ui_templates/board.html): drag a card to another column, or use the
// card's "Move to" form. Either way the card's form is posted with the CSRF header; the
// server answers with the card as it now is (with the error written on it when the move was
// refused) and every column's totals. The card then goes to the column of its value, which
// puts a refused card back where it was.
(function () {
  "use strict";

  var board = document.querySelector("[data-board]");
  if (!board) {
    return;
  }
  var headers = {};
  try {
    headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  } catch (e) {
    headers = {};
  }
  var dragged = null;

  function columnOf(value) {
    var columns = board.querySelectorAll(".board-column");
    for (var i = 0; i < columns.length; i++) {
      if (columns[i].getAttribute("data-value") === value) {
        return columns[i];
      }
    }
    return null;
  }

  function showError(card, text) {
    var old = card.querySelector(".board-error");
    if (old) {
      old.remove();
    }
    var p = document.createElement("p");
    p.className = "board-error";
    p.setAttribute("role", "alert");
    p.textContent = text; // text, never HTML
    var form = card.querySelector("form");
    card.insertBefore(p, form);
    card.classList.add("refused");
  }

  function place(card, value) {
    var column = columnOf(value);
    if (column) {
      column.querySelector(".board-cards").prepend(card);
    }
  }

  function move(card, value) {
    var form = card.querySelector("form.board-move");
    if (!form) {
      return;
    }
    var origin = card.getAttribute("data-value");
    var focused = card.contains(document.activeElement);
    var data = new URLSearchParams(new FormData(form));
    data.set("value", value);
    place(card, value); // at once; the answer puts it back if refused
    card.setAttribute("aria-busy", "true");
    var send = Object.assign({}, headers, {
      "HX-Request": "true",
      "Content-Type": "application/x-www-form-urlencoded",
    });
    fetch(form.action, {method: "POST", body: data, headers: send, credentials: "same-origin"})
      .then(function (response) {
        return response.text().then(function (html) {
          apply(card, origin, response.ok, html, focused);
        });
      })
      .catch(function () {
        card.removeAttribute("aria-busy");
        place(card, origin);
        showError(card, board.getAttribute("data-network-error"));
      });
  }

  function apply(card, origin, ok, html, focused) {
    // DOMParser builds an inert document: nothing in it runs.
    var doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll("[data-board-swap]").forEach(function (fresh) {
      var current = document.getElementById(fresh.id);
      if (current) {
        current.replaceWith(document.importNode(fresh, true));
      }
    });
    var fresh = doc.getElementById(card.id);
    if (fresh) {
      var node = document.importNode(fresh, true);
      card.replaceWith(node);
      place(node, node.getAttribute("data-value"));
      var select = node.querySelector("select");
      if (select && focused) {
        select.focus();
      }
      return;
    }
    card.removeAttribute("aria-busy");
    if (!ok) {
      place(card, origin);
      var orphan = doc.querySelector("[data-board-orphan]");
      showError(card, orphan ? orphan.textContent : board.getAttribute("data-network-error"));
    }
  }

  board.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".board-card[draggable]");
    if (!card) {
      return;
    }
    dragged = card;
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.id);
  });

  board.addEventListener("dragend", function () {
    if (dragged) {
      dragged.classList.remove("dragging");
    }
    dragged = null;
    board.querySelectorAll(".drop-target").forEach(function (c) {
      c.classList.remove("drop-target");
    });
  });

  board.addEventListener("dragover", function (event) {
    var column = event.target.closest && event.target.closest(".board-column");
    if (!dragged || !column) {
      return;
    }
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    board.querySelectorAll(".drop-target").forEach(function (c) {
      if (c !== column) {
        c.classList.remove("drop-target");
      }
    });
    column.classList.add("drop-target");
  });

  board.addEventListener("drop", function (event) {
    var column = event.target.closest && event.target.closest(".board-column");
    if (!dragged || !column) {
      return;
    }
    event.preventDefault();
    var card = dragged;
    var value = column.getAttribute("data-value");
    column.classList.remove("drop-target");
    if (value && value !== card.getAttribute("data-value")) {
      move(card, value);
    }
  });

  board.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList.contains("board-move")) {
      return;
    }
    event.preventDefault();
    var card = form.closest(".board-card");
    var value = form.querySelector("select").value;
    if (value && value !== card.getAttribute("data-value")) {
      move(card, value);
    }
  });

  // The "only my records" box applies at once when ticked.
  var mine = document.querySelector(".board-filters input[name=mine]");
  if (mine) {
    mine.addEventListener("change", function () {
      mine.form.submit();
    });
  }
})();
