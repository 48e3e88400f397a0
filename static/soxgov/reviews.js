// "My reviews": keyboard shortcuts, select-all, and delegating the ticked rows. Plain DOM, event delegation,
// so it keeps working after htmx swaps the results table.
(function () {
  "use strict";

  function rows() { return Array.from(document.querySelectorAll("table.queue tr[data-item]")); }
  function current() { return document.querySelector("table.queue tr.focused"); }

  function focusRow(row) {
    if (!row) return;
    rows().forEach(function (r) { r.classList.remove("focused"); });
    row.classList.add("focused");
    row.focus({ preventScroll: false });
  }

  function move(step) {
    var all = rows();
    var index = all.indexOf(current());
    focusRow(all[Math.min(all.length - 1, Math.max(0, index + step))]);
  }

  function decideFocused(action) {
    var row = current();
    var box = row && row.querySelector("input[name=item]");
    if (!box) return;
    var form = document.getElementById("decide-form");
    form.querySelectorAll("input[name=item]").forEach(function (b) { b.checked = (b === box); });
    var all = form.querySelector("input[name=all_matching]");
    if (all) all.checked = false;  // a shortcut decides the focused row, never everything matching
    if (action === "revoke") {
      var why = window.prompt("Why revoke this access? (required)");
      if (!why) return;
      form.querySelector("textarea[name=comment]").value = why;
    }
    form.querySelector("button[value=" + action + "]").click();
  }

  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (!document.querySelector("table.queue")) return;
    var key = event.key;
    if (key === "j") { move(1); }
    else if (key === "k") { move(-1); }
    else if (key === "x") { var box = current() && current().querySelector("input[name=item]"); if (box) box.checked = !box.checked; }
    else if (key === "c") { decideFocused("certify"); }
    else if (key === "r") { decideFocused("revoke"); }
    else if (key === "/") { var search = document.querySelector("form.filters input[name=q]"); if (search) search.focus(); }
    else { return; }
    event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      document.querySelectorAll("#decide-form input[name=item]").forEach(function (b) { b.checked = event.target.checked; });
    }
  });

  // The delegate form lives outside the decision form: carry the ticked rows over when it is submitted.
  document.addEventListener("submit", function (event) {
    if (event.target.id !== "delegate-form") return;
    var form = event.target;
    form.querySelectorAll("input[name=item]").forEach(function (i) { i.remove(); });
    document.querySelectorAll("#decide-form input[name=item]:checked").forEach(function (box) {
      var copy = document.createElement("input");
      copy.type = "hidden"; copy.name = "item"; copy.value = box.value;
      form.appendChild(copy);
    });
  });
})();
