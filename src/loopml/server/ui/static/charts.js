// loopml's UI: a run's metric histories on one uPlot chart. Every logged point is drawn
// (none sampled away, so a spike shows); smoothing draws an exponential moving average
// over the raw line, which stays visible, faint.
(function () {
  "use strict";

  const COLOURS = ["#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490",
                   "#a16207", "#be185d", "#4d7c0f", "#1e40af", "#9a3412", "#334155"];

  function smooth(values, weight) {
    if (weight <= 0) {
      return values;
    }
    const out = new Array(values.length);
    let last = values.length ? values[0] : 0;
    for (let i = 0; i < values.length; i++) {
      last = last * weight + values[i] * (1 - weight);
      out[i] = last;
    }
    return out;
  }

  function tick(v) {
    if (v === null) {
      return "";
    }
    const size = Math.abs(v);
    return size > 0 && (size < 1e-3 || size >= 1e6) ? v.toExponential(1) : String(Number(v.toPrecision(4)));
  }

  // One x-axis for every metric: the union of their steps (or times), each metric's values
  // at its own x and null elsewhere (uPlot joins across the gaps).
  function aligned(series, keys, x) {
    const xs = new Set();
    keys.forEach(function (key) { series[key][x].forEach(function (v) { xs.add(v); }); });
    const axis = Array.from(xs).sort(function (a, b) { return a - b; });
    const at = new Map(axis.map(function (v, i) { return [v, i]; }));
    const columns = keys.map(function (key) {
      const column = new Array(axis.length).fill(null);
      const points = series[key];
      points[x].forEach(function (v, i) { column[at.get(v)] = points.value[i]; });
      return column;
    });
    return [axis, columns];
  }

  function draw(section, series, state) {
    const target = section.querySelector(".chart");
    const keys = state.keys.filter(function (key) { return key in series; });
    target.innerHTML = "";
    if (!keys.length) {
      section.querySelector(".chart-note").textContent = "Choose a metric to chart.";
      return;
    }
    const found = aligned(series, keys, state.x);
    const data = [found[0]];
    const lines = [{}];
    keys.forEach(function (key, i) {
      const colour = COLOURS[i % COLOURS.length];
      const raw = found[1][i];
      if (state.smoothing > 0) {
        data.push(raw);
        lines.push({ label: key + " (raw)", stroke: colour + "55", width: 1, spanGaps: true });
        const present = raw.filter(function (v) { return v !== null; });
        const smoothed = smooth(present, state.smoothing);
        let j = 0;
        data.push(raw.map(function (v) { return v === null ? null : smoothed[j++]; }));
        lines.push({ label: key, stroke: colour, width: 2, spanGaps: true });
      } else {
        data.push(raw);
        lines.push({ label: key, stroke: colour, width: 1.5, spanGaps: true });
      }
    });
    let log = state.log;
    if (log && data.slice(1).some(function (c) { return c.some(function (v) { return v !== null && v <= 0; }); })) {
      log = false;  // a log scale cannot show zero or less
    }
    const total = keys.reduce(function (n, key) { return n + series[key].value.length; }, 0);
    section.querySelector(".chart-note").textContent =
      total.toLocaleString() + " points, every one drawn." +
      (state.log && !log ? " A log scale cannot show values of zero or less: the scale is linear." : "");
    const style = getComputedStyle(document.documentElement);
    const ink = style.getPropertyValue("--ink").trim();
    const grid = { stroke: style.getPropertyValue("--line").trim() };
    const options = {
      width: Math.max(320, target.clientWidth),
      height: 340,
      scales: { x: { time: state.x === "time" }, y: { distr: log ? 3 : 1 } },
      series: lines,
      axes: [
        { label: state.x, stroke: ink, grid: grid },
        { stroke: ink, grid: grid, size: 64, values: function (u, ticks) { return ticks.map(tick); } },
      ],
    };
    new uPlot(options, data, target);
  }

  function stateOf(form) {
    return {
      keys: Array.from(form.querySelectorAll("input[name=key]:checked")).map(function (box) {
        return box.value;
      }),
      x: form.querySelector("select[name=x]").value,
      log: form.querySelector("input[name=log]").checked,
      smoothing: parseFloat(form.querySelector("input[name=smoothing]").value),
    };
  }

  function setUp(section) {
    const form = section.querySelector("form");
    const cache = {};
    function refresh() {
      const state = stateOf(form);
      const missing = state.keys.filter(function (key) { return !(key in cache); });
      if (!missing.length) {
        draw(section, cache, state);
        return;
      }
      const query = missing.map(function (key) {
        return "key=" + encodeURIComponent(key);
      }).join("&");
      fetch("/ui/runs/" + section.dataset.run + "/metrics.json?" + query)
        .then(function (answer) {
          if (!answer.ok) {
            throw new Error("the server answered " + answer.status);
          }
          return answer.json();
        })
        .then(function (found) {
          Object.assign(cache, found);
          draw(section, cache, state);
        })
        .catch(function (error) {
          section.querySelector(".chart-note").textContent = "Cannot load the values: " + error.message;
        });
    }
    form.addEventListener("change", refresh);
    form.addEventListener("input", function (event) {
      if (event.target.name === "smoothing") {
        refresh();
      }
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    refresh();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("section.charts").forEach(setUp);
  });
})();
