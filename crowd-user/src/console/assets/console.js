// crowd console: the charts (uPlot) and the live kernel counters. htmx does everything else
// (forms, live table refreshes over server-sent events); nothing here touches the DOM beyond
// setting counter texts and handing data to uPlot.
(function () {
  "use strict";
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function width(el) {
    return Math.max(240, el.clientWidth || 480);
  }
  function alertsChart() {
    var el = document.getElementById("alerts-chart");
    var d = data("alerts-data");
    if (!el || !d || typeof uPlot === "undefined") return;
    el.textContent = "";
    new uPlot({ width: width(el), height: 160, legend: { show: false },
      series: [{}, { label: "alerts", stroke: "#b03a2e", fill: "rgba(176,58,46,0.15)" }] },
      [d.map(function (p) { return p[0]; }), d.map(function (p) { return p[1]; })], el);
  }
  var drops = null, last = null, xs = [], ys = [];
  // The last five minutes, whatever the number of points so far.
  function window5m() {
    var now = Date.now() / 1000;
    return [now - 300, now];
  }
  function dropsChart() {
    var el = document.getElementById("drops-chart");
    if (!el || typeof uPlot === "undefined") return;
    el.textContent = "";
    // The server's last five minutes, then the live feed.
    var seed = data("drops-data");
    if (seed) {
      seed[0].forEach(function (p) { xs.push(p[0]); ys.push(p[1]); });
      last = seed[1] || null;
      var r = document.getElementById("drop-rate");
      if (r && ys.length) r.textContent = ys[ys.length - 1].toFixed(1);
    }
    drops = new uPlot({ width: width(el), height: 160, legend: { show: false },
      scales: { x: { time: true, range: window5m }, y: { range: function (u, min, max) { return [0, Math.max(10, max * 1.2)]; } } },
      series: [{}, { label: "dropped/s", stroke: "#1f4e79", fill: "rgba(31,78,121,0.15)" }] }, [xs, ys], el);
  }
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      var el = document.getElementById("drops-chart");
      if (drops && el) drops.setSize({ width: width(el), height: 160 });
      alertsChart();
    }, 150);
  });
  function kernel(k) {
    Object.keys(k).forEach(function (key) {
      document.querySelectorAll('[data-kernel="' + key + '"]').forEach(function (n) {
        n.textContent = String(k[key]);
      });
    });
    if (last && k.t > last.t) {
      xs.push(k.t);
      ys.push(Math.max(0, (k.dropped - last.dropped) / (k.t - last.t)));
      if (xs.length > 300) { xs.shift(); ys.shift(); }
      if (drops) drops.setData([xs, ys]);
      var r = document.getElementById("drop-rate");
      if (r) r.textContent = ys[ys.length - 1].toFixed(1);
    }
    last = k;
  }
  document.addEventListener("DOMContentLoaded", function () { alertsChart(); dropsChart(); });
  document.addEventListener("htmx:afterSettle", function (e) {
    if (e.target && e.target.id === "overview-body") alertsChart();
  });
  document.addEventListener("htmx:sseMessage", function (e) {
    if (e.detail && e.detail.type === "kernel") {
      try { kernel(JSON.parse(e.detail.data)); } catch (err) { /* a partial message: wait for the next */ }
    }
  });
})();
