// SecondRow UI: times in the browser's zone, and a run's live graph and a task's live logs over Server-Sent
// Events.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = d.toLocaleString(); el.title = el.getAttribute("datetime"); }
    });
  }
  // A duration as the server writes it: "4.2s", "3m 07s", "2h 05m".
  function durationText(ms) {
    ms = Math.max(0, ms);
    var s = Math.floor(ms / 1000);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (s >= 3600) { return Math.floor(s / 3600) + "h " + two(Math.floor(s % 3600 / 60)) + "m"; }
    if (s >= 60) { return Math.floor(s / 60) + "m " + two(s % 60) + "s"; }
    return (ms / 1000).toFixed(1) + "s";
  }
  // A running run's duration counts on every second from its start (on the server's clock).
  var skew = 0;
  function tickDuration() {
    var el = document.getElementById("run-duration");
    if (!el || !el.dataset.startedMs) { return; }
    el.textContent = durationText(Date.now() + skew - Number(el.dataset.startedMs)) + "…";
  }
  function live() {
    var g = document.getElementById("graph");
    if (!g || !g.dataset.events || !window.EventSource) { return; }
    var du = document.getElementById("run-duration");
    if (du && du.dataset.nowMs) { skew = Number(du.dataset.nowMs) - Date.now(); }
    var ticker = setInterval(tickDuration, 1000);
    var es = new EventSource(g.dataset.events);
    es.addEventListener("update", function (e) {
      var d = JSON.parse(e.data);
      if (d.view) { g.innerHTML = d.view; }
      if (du && typeof d.duration === "string") {
        if (d.now_ms) { skew = d.now_ms - Date.now(); }
        if (d.started_ms && !d.done) { du.dataset.startedMs = d.started_ms; } else { delete du.dataset.startedMs; }
        du.textContent = d.duration;
      }
      if (d.done) { clearInterval(ticker); }
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
  // A running task's logs: each stream's <pre> grows by the bytes the server sends; only its last 512 KiB are
  // kept. When the task ends (or the stream breaks) the fragment is fetched again, in its final form.
  var LOG_KEEP = 512 * 1024;
  function liveLogs(root) {
    var box = root.matches && root.matches("[data-log-events]") ? root : root.querySelector("[data-log-events]");
    if (!box || !window.EventSource || box.dataset.following) { return; }
    box.dataset.following = "1";
    var es = new EventSource(box.dataset.logEvents);
    function reload() {
      es.close();
      if (document.body.contains(box) && window.htmx) {
        window.htmx.ajax("GET", box.dataset.final, { target: box, swap: "outerHTML" });
      }
    }
    es.addEventListener("log", function (e) {
      if (!document.body.contains(box)) { es.close(); return; }
      var d = JSON.parse(e.data);
      var pre = box.querySelector('pre[data-stream="' + d.stream + '"]');
      if (!pre) { return; }
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      var text = (d.reset ? "" : pre.textContent) + d.text;
      if (text.length > LOG_KEEP) { text = text.slice(text.length - LOG_KEEP); }
      pre.textContent = text;
      if (atEnd) { pre.scrollTop = pre.scrollHeight; }
    });
    es.addEventListener("end", reload);
    es.onerror = function () { es.close(); setTimeout(reload, 2000); };
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    live();
    liveLogs(document);
    document.body.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); liveLogs(document); });
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
