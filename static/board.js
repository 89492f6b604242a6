// The pipeline board (ui_templates/board.html): drag a card to another column, or use the
// card's "Move" menu. Either way the move is posted with the CSRF header; the server answers
// with the card as it now is and every column's totals. A refused move comes back with the
// reason written on the card, or with a small form asking for what the move needs (a lost
// reason): the card waits in the column it was dropped on until that form is sent (the move
// and the values are saved together) or cancelled (the card goes back). The card always ends
// in the column of its value, which puts a refused card back where it was.
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
    var old = card.querySelector(":scope > .board-error");
    if (old) {
      old.remove();
    }
    var p = document.createElement("p");
    p.className = "board-error";
    p.setAttribute("role", "alert");
    p.textContent = text; // text, never HTML
    card.appendChild(p);
    card.classList.add("refused");
  }

  function place(card, value) {
    var column = columnOf(value);
    if (column) {
      column.querySelector(".board-cards").prepend(card);
    }
  }

  function focusMenu(card) {
    var summary = card.querySelector(".board-menu > summary");
    if (summary) {
      summary.focus();
    }
  }

  // Post `form` (the card's move form, or its prompt) with `value` as the new column.
  function send(card, form, value) {
    var origin = card.getAttribute("data-value");
    var focused = card.contains(document.activeElement);
    var data = new URLSearchParams(new FormData(form));
    data.set("value", value);
    place(card, value); // at once; the answer puts it back if refused
    card.setAttribute("aria-busy", "true");
    var extra = Object.assign({}, headers, {
      "HX-Request": "true",
      "Content-Type": "application/x-www-form-urlencoded",
    });
    fetch(form.action, {method: "POST", body: data, headers: extra, credentials: "same-origin"})
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

  function move(card, value) {
    var form = card.querySelector("form.board-move");
    if (form) {
      send(card, form, value);
    }
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
      var prompt = node.querySelector("form.board-prompt");
      if (prompt) {
        // Asked for more: wait in the column the card is going to.
        place(node, prompt.getAttribute("data-target"));
        var first = prompt.querySelector("input:not([type=hidden]), select, textarea");
        if (first) {
          first.focus();
        }
        return;
      }
      place(node, node.getAttribute("data-value"));
      if (focused) {
        focusMenu(node);
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

  function cancel(card) {
    var prompt = card.querySelector("form.board-prompt");
    if (prompt) {
      prompt.remove();
    }
    card.classList.remove("refused");
    place(card, card.getAttribute("data-value"));
    focusMenu(card);
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
    } else if (value && card.querySelector("form.board-prompt")) {
      cancel(card); // dropped back where it came from
    }
  });

  board.addEventListener("submit", function (event) {
    var form = event.target;
    var card = form.closest(".board-card");
    if (!card) {
      return;
    }
    if (form.classList.contains("board-move")) {
      event.preventDefault();
      var value = form.querySelector("select").value;
      if (value && value !== card.getAttribute("data-value")) {
        move(card, value);
      }
    } else if (form.classList.contains("board-prompt")) {
      event.preventDefault();
      send(card, form, form.getAttribute("data-target"));
    }
  });

  board.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-board-cancel]");
    if (button) {
      cancel(button.closest(".board-card"));
    }
  });

  // Escape closes a card's open menu, or cancels its prompt.
  board.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") {
      return;
    }
    var card = event.target.closest && event.target.closest(".board-card");
    if (!card) {
      return;
    }
    var menu = card.querySelector(".board-menu[open]");
    if (menu && menu.contains(event.target)) {
      menu.open = false;
      focusMenu(card);
    } else if (card.querySelector("form.board-prompt")) {
      cancel(card);
    }
  });

  // The filters apply at once when changed.
  document.querySelectorAll(".board-filters select, .board-filters input[name=mine]")
    .forEach(function (input) {
      input.addEventListener("change", function () {
        input.form.requestSubmit ? input.form.requestSubmit() : input.form.submit();
      });
    });
})();
