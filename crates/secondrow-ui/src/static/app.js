// SecondRow UI: times in the browser's zone, and a run's live graph over Server-Sent Events.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = d.toLocaleString(); el.title = el.getAttribute("datetime"); }
    });
  }
  function live() {
    var g = document.getElementById("graph");
    if (!g || !g.dataset.events || !window.EventSource) { return; }
    var es = new EventSource(g.dataset.events);
    es.addEventListener("update", function (e) {
      var d = JSON.parse(e.data);
      if (d.view) { g.innerHTML = d.view; }
      document.querySelectorAll("[data-run-state]").forEach(function (el) {
        el.textContent = d.state;
        el.className = "badge state-" + d.state.toLowerCase();
      });
      g.dataset.state = d.state;
      if (d.done) {
        es.close();
        var t = document.getElementById("terminate");
        if (t) { t.closest("form").remove(); }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    live();
    document.body.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
  });
})();
// Forms marked `data-confirm` (deleting a pipeline, a version, an experiment, a recurring run) ask first.
(function () {
  "use strict";
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  });
})();
