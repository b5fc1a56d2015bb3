// The Market page's countdowns: every <time data-deadline="unix seconds"> shows the time left,
// ticking once a second. The server's clock at render time is in #market[data-now], so a browser
// whose clock is off still counts down to the node's deadlines. The text format is the server's
// (colony.server.web.market_page.countdown): "1h 02m 03s", "4m 05s", "42s", then "passed".
(function () {
  "use strict";
  var root = document.getElementById("market");
  if (!root) return;
  var skewMs = Number(root.getAttribute("data-now")) * 1000 - Date.now();
  var clocks = Array.prototype.slice.call(document.querySelectorAll("time[data-deadline]"));
  if (!clocks.length) return;

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function text(seconds) {
    if (seconds <= 0) return "passed";
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return h + "h " + pad(m) + "m " + pad(s) + "s";
    return m ? m + "m " + pad(s) + "s" : s + "s";
  }

  function tick() {
    var now = Date.now() + skewMs;
    clocks.forEach(function (el) {
      var left = Math.ceil((Number(el.getAttribute("data-deadline")) * 1000 - now) / 1000);
      var shown = text(left);
      if (el.textContent !== shown) el.textContent = shown;
      el.classList.toggle("passed", left <= 0);
    });
  }

  tick();
  window.setInterval(tick, 1000);
})();
