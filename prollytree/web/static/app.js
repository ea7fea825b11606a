// prollytree web UI: live updates and deferred counts. No dependencies.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="prolly-state"]');
  var token = meta ? meta.content : "";
  var live = document.getElementById("live");
  var banner = document.getElementById("changed");

  function editing() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT")
      && el.value !== "";
  }

  function changed(newToken) {
    if (!token || newToken === token) return;
    token = newToken;
    // reload at once unless the user is typing; then offer a reload
    if (editing()) { banner.hidden = false; } else { window.location.reload(); }
  }

  function listen() {
    if (!window.EventSource) return poll();
    var es = new EventSource("/api/events");
    es.addEventListener("state", function (e) {
      if (live) live.classList.add("on");
      try { changed(JSON.parse(e.data).token); } catch (err) { /* ignore */ }
    });
    es.onerror = function () { if (live) live.classList.remove("on"); };
  }

  function poll() {
    setInterval(function () {
      fetch("/api/state").then(function (r) { return r.json(); })
        .then(function (s) { changed(s.token); }).catch(function () {});
    }, 2000);
  }

  var reload = document.getElementById("reload");
  if (reload) reload.addEventListener("click", function (e) { e.preventDefault(); window.location.reload(); });

  // a commit that changed many keys: its counts arrive after the page
  document.querySelectorAll("[data-counts-url]").forEach(function (cell) {
    fetch(cell.dataset.countsUrl).then(function (r) { return r.json(); }).then(function (c) {
      cell.textContent = c.added + " added, " + c.modified + " modified, " + c.deleted + " removed";
    }).catch(function () {});
  });

  if (token) listen();
})();
