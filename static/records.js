// Pickers (ui_templates/form_fields.html): arrow keys move between the search box and the
// matches, Escape closes the matches. Choosing is an htmx request; this only moves focus.
document.addEventListener("keydown", function (event) {
  const picker = event.target.closest && event.target.closest(".picker");
  if (!picker) return;
  const list = picker.querySelector(".pick-list");
  const options = Array.from(list ? list.querySelectorAll("button.pick") : []);
  const box = picker.querySelector('input[role="combobox"]');
  const at = options.indexOf(event.target);
  if (event.key === "ArrowDown" && options.length) {
    options[Math.min(at + 1, options.length - 1)].focus();
    event.preventDefault();
  } else if (event.key === "ArrowUp" && at >= 0) {
    (at === 0 ? box : options[at - 1]).focus();
    event.preventDefault();
  } else if (event.key === "Escape" && list) {
    list.innerHTML = "";
    if (box) box.focus();
  } else if (event.key === "Enter" && event.target === box) {
    // Enter in the search box chooses the only match instead of sending the form.
    event.preventDefault();
    if (options.length === 1) options[0].click();
  }
});
document.addEventListener("htmx:afterSwap", function (event) {
  const list = event.detail.target;
  if (list.classList && list.classList.contains("pick-list")) {
    const box = list.parentElement.querySelector('input[role="combobox"]');
    if (box) box.setAttribute("aria-expanded", list.children.length ? "true" : "false");
  }
});
