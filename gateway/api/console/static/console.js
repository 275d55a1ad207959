// Progressive enhancement only: every page works without this file.
"use strict";
(function () {
  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
  }

  // A document in flight: poll its status and reload when it changes.
  var doc = document.querySelector("[data-poll]");
  if (doc) {
    var timer = setInterval(function () {
      getJson(doc.dataset.poll).then(function (data) {
        if (data.status !== doc.dataset.current || data.final) { clearInterval(timer); location.reload(); }
      }).catch(function () { /* keep the page as it is; the next poll tries again */ });
    }, 2000);
  }

  // The health page: the queue's depth every few seconds.
  var queue = document.querySelector("[data-poll-queue]");
  if (queue) {
    setInterval(function () {
      getJson(queue.dataset.pollQueue).then(function (data) {
        document.getElementById("queue-total").textContent = data.total;
        document.getElementById("queue-oldest").textContent = data.oldest_seconds;
        document.getElementById("queue-at").textContent = data.at;
        data.states.forEach(function (s) {
          var row = queue.querySelector('tr[data-state="' + s.state + '"]');
          if (row) {
            row.querySelector(".count").textContent = s.count;
            row.querySelector(".oldest").textContent = s.oldest_seconds;
          }
        });
      }).catch(function () {});
    }, 3000);
  }

  // Pages waiting for something slower (an SML registration): reload now and then.
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    setTimeout(function () { location.reload(); }, Number(refresh.dataset.refresh) * 1000);
  }
})();
