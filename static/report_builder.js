// The report builder (ui_templates/report_builder_form.html): choosing a field in the
// "Insert a field" list puts its name into the filter box at the cursor, then tells htmx
// the box changed (its live check runs). The form is drawn again by htmx, so the
// listener is on the document.
document.addEventListener("change", function (event) {
  const picker = event.target;
  if (!picker.classList || !picker.classList.contains("insert-field") || !picker.value) return;
  const box = document.getElementById(picker.dataset.into);
  if (!box) return;
  const start = box.selectionStart ?? box.value.length;
  const end = box.selectionEnd ?? box.value.length;
  box.value = box.value.slice(0, start) + picker.value + box.value.slice(end);
  const at = start + picker.value.length;
  box.focus();
  box.setSelectionRange(at, at);
  picker.value = "";
  box.dispatchEvent(new Event("input", { bubbles: true }));
});
