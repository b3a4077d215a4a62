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

  // One x-axis for every line: the union of their steps (or times), each line's values at
  // its own x and null elsewhere (uPlot joins across the gaps).
  function aligned(lines, x) {
    const xs = new Set();
    lines.forEach(function (line) { line.points[x].forEach(function (v) { xs.add(v); }); });
    const axis = Array.from(xs).sort(function (a, b) { return a - b; });
    const at = new Map(axis.map(function (v, i) { return [v, i]; }));
    const columns = lines.map(function (line) {
      const column = new Array(axis.length).fill(null);
      line.points[x].forEach(function (v, i) { column[at.get(v)] = line.points.value[i]; });
      return column;
    });
    return [axis, columns];
  }

  // What to draw: one run's checked metrics, or one metric of every compared run.
  function wanted(section, form) {
    if (section.dataset.run) {
      return Array.from(form.querySelectorAll("input[name=key]:checked")).map(function (box) {
        return { label: box.value, run: section.dataset.run, key: box.value };
      });
    }
    const key = form.querySelector("select[name=metric]").value;
    const names = (section.dataset.names || "").split(",");
    return section.dataset.runs.split(",").map(function (run, i) {
      return { label: names[i] || run.slice(0, 8), run: run, key: key };
    });
  }

  function draw(section, lines, state) {
    const target = section.querySelector(".chart");
    const note = section.querySelector(".chart-note");
    target.innerHTML = "";
    lines = lines.filter(function (line) { return line.points.value.length; });
    if (!lines.length) {
      note.textContent = "Nothing to chart: choose a metric.";
      return;
    }
    const found = aligned(lines, state.x);
    const data = [found[0]];
    const series = [{}];
    lines.forEach(function (line, i) {
      const colour = COLOURS[i % COLOURS.length];
      const raw = found[1][i];
      data.push(raw);
      if (state.smoothing > 0) {
        series.push({ label: line.label + " (raw)", stroke: colour + "55", width: 1, spanGaps: true });
        const smoothed = smooth(raw.filter(function (v) { return v !== null; }), state.smoothing);
        let j = 0;
        data.push(raw.map(function (v) { return v === null ? null : smoothed[j++]; }));
        series.push({ label: line.label, stroke: colour, width: 2, spanGaps: true });
      } else {
        series.push({ label: line.label, stroke: colour, width: 1.5, spanGaps: true });
      }
    });
    let log = state.log;
    if (log && data.slice(1).some(function (c) { return c.some(function (v) { return v !== null && v <= 0; }); })) {
      log = false;  // a log scale cannot show zero or less
    }
    const total = lines.reduce(function (n, line) { return n + line.points.value.length; }, 0);
    note.textContent = total.toLocaleString() + " points, every one drawn." +
      (state.log && !log ? " A log scale cannot show values of zero or less: the scale is linear." : "");
    const style = getComputedStyle(document.documentElement);
    const ink = style.getPropertyValue("--ink").trim();
    const grid = { stroke: style.getPropertyValue("--line").trim() };
    const options = {
      width: Math.max(320, target.clientWidth),
      height: 340,
      scales: { x: { time: state.x === "time" }, y: { distr: log ? 3 : 1 } },
      series: series,
      axes: [
        { label: state.x, stroke: ink, grid: grid },
        { stroke: ink, grid: grid, size: 64, values: function (u, ticks) { return ticks.map(tick); } },
      ],
    };
    new uPlot(options, data, target);
  }

  function stateOf(form) {
    return {
      x: form.querySelector("select[name=x]").value,
      log: form.querySelector("input[name=log]").checked,
      smoothing: parseFloat(form.querySelector("input[name=smoothing]").value),
    };
  }

  function load(run, keys) {
    const query = keys.map(function (key) { return "key=" + encodeURIComponent(key); }).join("&");
    return fetch("/ui/runs/" + run + "/metrics.json?" + query).then(function (answer) {
      if (!answer.ok) {
        throw new Error("the server answered " + answer.status);
      }
      return answer.json();
    });
  }

  function setUp(section) {
    const form = section.querySelector("form");
    const cache = {};  // run -> key -> points
    function refresh() {
      const lines = wanted(section, form);
      const missing = {};
      lines.forEach(function (line) {
        if (!(cache[line.run] && line.key in cache[line.run])) {
          (missing[line.run] = missing[line.run] || []).push(line.key);
        }
      });
      Promise.all(Object.keys(missing).map(function (run) {
        return load(run, missing[run]).then(function (found) {
          cache[run] = Object.assign(cache[run] || {}, found);
        });
      })).then(function () {
        draw(section, lines.map(function (line) {
          const points = cache[line.run][line.key] || { step: [], time: [], value: [] };
          return { label: line.label, points: points };
        }), stateOf(form));
      }).catch(function (error) {
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
