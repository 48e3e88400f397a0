// Draws the dashboard's charts from the JSON the page embeds (Chart.js from npm, see static/package.json).
(function () {
  "use strict";
  function data(id) { return JSON.parse(document.getElementById(id).textContent); }
  function bar(canvasId, pairs, label, options) {
    var canvas = document.getElementById(canvasId);
    if (!canvas || typeof Chart === "undefined") return;
    canvas.dataset.drawn = "true";
    new Chart(canvas, {
      type: "bar",
      data: { labels: pairs.map(function (p) { return p[0]; }), datasets: [{ label: label, data: pairs.map(function (p) { return p[1]; }) }] },
      options: Object.assign({ animation: false, plugins: { legend: { display: false } } }, options || {}),
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    bar("chart-age", data("data-age"), "open exceptions");
    bar("chart-kind", data("data-kind"), "open exceptions", { indexAxis: "y" });
    bar("chart-campaigns", data("data-campaigns"), "% decided", { scales: { y: { min: 0, max: 100 } } });
  });
})();
