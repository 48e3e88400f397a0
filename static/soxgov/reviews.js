// "My reviews": keyboard shortcuts, select-all, delegating the ticked rows, and moving on after a decision made
// in place (htmx swaps #results). Plain DOM, event delegation, so it keeps working after every swap.
(function () {
  "use strict";

  function rows() { return Array.from(document.querySelectorAll("table.queue tr[data-item]")); }
  function current() { return document.querySelector("table.queue tr.focused"); }
  function boxes() { return Array.from(document.querySelectorAll("table.queue input[name=item]")); }
  function decideForm() { return document.getElementById("decide-form"); }

  // The row to focus once the decision's answer is swapped in: the one after the decided rows.
  var focusAfterSwap = null;

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

  function rowAfter(row) {
    var all = rows();
    var next = all[all.indexOf(row) + 1];
    return next ? next.dataset.item : null;
  }

  function decideFocused(action) {
    var row = current();
    var box = row && row.querySelector("input[name=item]");
    if (!box) return;
    var form = decideForm();
    boxes().forEach(function (b) { b.checked = (b === box); });
    var all = form.querySelector("input[name=all_matching]");
    if (all) all.checked = false;  // a shortcut decides the focused row, never everything matching
    var comment = form.querySelector("textarea[name=comment]");
    if (action === "revoke") {
      var why = window.prompt("Why revoke this access? (required)");
      if (!why) return;
      comment.value = why;
    } else if (row.dataset.needsComment) {
      var note = window.prompt("This item is flagged (" + row.dataset.needsComment + "): why certify it? (required)");
      if (!note) return;
      comment.value = note;
    }
    focusAfterSwap = rowAfter(row);
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
      boxes().forEach(function (b) { b.checked = event.target.checked; });
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id === "decide-form" && focusAfterSwap === null) {
      // A bulk decision: move on to the row after the last ticked one.
      var ticked = boxes().filter(function (b) { return b.checked; });
      var last = ticked.length ? ticked[ticked.length - 1].closest("tr") : current();
      focusAfterSwap = last ? rowAfter(last) : null;
    }
    // The delegate form lives apart from the rows: carry the ticked rows over when it is submitted.
    if (form.id !== "delegate-form") return;
    form.querySelectorAll("input[name=item]").forEach(function (i) { i.remove(); });
    boxes().filter(function (b) { return b.checked; }).forEach(function (box) {
      var copy = document.createElement("input");
      copy.type = "hidden"; copy.name = "item"; copy.value = box.value;
      form.appendChild(copy);
    });
  }, true);

  document.addEventListener("htmx:afterSettle", function (event) {
    if (!event.target || event.target.id !== "results") return;
    var wanted = focusAfterSwap;
    focusAfterSwap = null;
    if (!event.detail || !event.detail.requestConfig || event.detail.requestConfig.verb !== "post") return;
    // Flagged rows left ticked for want of a comment: the comment is what to write next.
    var comment = document.querySelector("#decide-form textarea[data-needs-comment-for]");
    if (comment) { comment.focus(); return; }
    var row = wanted && document.querySelector('table.queue tr[data-item="' + wanted + '"]');
    focusRow(row || rows()[0]);
  });
})();
