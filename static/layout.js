// Folding parts of the layout on narrow screens (static/app.css, max-width 48rem): the side
// menu and a list's filters. A button with data-fold="<id>" shows or hides the element of
// that id; aria-expanded says which, Escape folds it again and gives focus back to its
// button. The class "folding" on <html> turns the folding on, so without this script
// nothing is ever hidden. Loaded in <head> without defer (it is tiny) so that the class is
// there before the first paint; the listeners sit on the document, which exists already.
// A file, never inline script: pages run under a Content-Security-Policy.
(function () {
  "use strict";
  document.documentElement.classList.add("folding");

  function target(button) {
    return document.getElementById(button.getAttribute("data-fold"));
  }

  function fold(button, open) {
    const element = target(button);
    if (!element) return;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    element.classList.toggle("unfolded", open);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[data-fold]");
    if (button) fold(button, button.getAttribute("aria-expanded") !== "true");
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll('button[data-fold][aria-expanded="true"]').forEach(function (button) {
      const element = target(button);
      if (!element || !(element.contains(event.target) || event.target === button)) return;
      fold(button, false);
      button.focus();
    });
  });
})();
