// lrsearch dashboard: the charts (plotly.js), shared by the views.
// Colours: one hue per schedule type, and shades of it per trial within the type.
// Log axes: one tick per decade, labelled 1e-4, 1e-3, ...
"use strict";

(() => {
  const { $, el, lr, trialHash } = window.LR;
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const COLOURS = {
    step: "#1f77b4", exponential: "#ff7f0e", cosine: "#2ca02c",
    plateau: "#d62728", cyclic: "#9467bd", warmup: "#8c564b",
  };
  const EXTRA_COLOURS = ["#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  // Shades of a hue for the 1st, 2nd, 3rd... trial of a type: >0 towards white, <0 towards black.
  const SHADES = [0, 0.45, -0.4, 0.7, -0.6, 0.25, -0.2, 0.85, -0.75, 0.6];
  const NO_COMPLETE = "No completed trial yet: this chart appears once a trial completes.";

  // plotly.js (4.8 MB, about a second of CPU to start) is only loaded when a chart is about
  // to be drawn, by inserting its <script>: text and tables never wait for it.
  // prefetchPlotly() lets the browser fetch it early, without running it.
  const PLOTLY_SRC = document.querySelector("meta[name=lrsearch-plotly]").content;
  let plotlyLoading = null;

  function plotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyLoading) {
      plotlyLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = PLOTLY_SRC;
        script.async = true;
        script.addEventListener("load", () => resolve(window.Plotly));
        script.addEventListener("error", () => {
          plotlyLoading = null; // the next chart tries again
          script.remove();
          reject(new Error("plotly.js did not load"));
        });
        document.head.append(script);
      });
    }
    return plotlyLoading;
  }

  function prefetchPlotly() {
    if (window.Plotly || $("plotly-prefetch")) return;
    const link = document.createElement("link");
    Object.assign(link, { id: "plotly-prefetch", rel: "preload", as: "script", href: PLOTLY_SRC });
    document.head.append(link);
  }
  // Once a page without charts is drawn (the key form, the studies list), the browser's
  // idle time loads plotly.js, so that the next page with charts finds it ready.
  function plotlyWhenIdle() {
    if (window.Plotly || plotlyLoading) return;
    const start = () => plotly().catch(() => {}); // a chart that needs it will try again
    if (window.requestIdleCallback) window.requestIdleCallback(start);
    else setTimeout(start, 500);
  }

  window.LR.plotly = plotly; // before views_trials.js and views_analysis.js take it

  const scheduleOrder = [];
  function colour(schedule) {
    if (COLOURS[schedule]) return COLOURS[schedule];
    if (!scheduleOrder.includes(schedule)) scheduleOrder.push(schedule);
    return EXTRA_COLOURS[scheduleOrder.indexOf(schedule) % EXTRA_COLOURS.length];
  }

  // The schedule's hue, lighter or darker for the index-th trial of that type.
  function shade(schedule, index = 0) {
    const base = colour(schedule);
    const f = SHADES[index % SHADES.length];
    const rgb = [1, 3, 5].map((i) => parseInt(base.slice(i, i + 2), 16));
    const mixed = rgb.map((c) => Math.round(f >= 0 ? c + (255 - c) * f : c * (1 + f)));
    return `#${mixed.map((c) => c.toString(16).padStart(2, "0")).join("")}`;
  }

  const layout = (extra) => ({
    margin: { l: 64, r: 16, t: 12, b: 44 },
    uirevision: "keep", // keep the user's zoom and legend clicks across live updates
    legend: { font: { size: 11 }, groupclick: "toggleitem" },
    hovermode: "closest",
    ...extra,
  });

  // A log axis with one tick per decade, written 1e-4, 1e-3, ...
  const logAxis = (title, extra) => ({
    title: { text: title }, type: "log", dtick: 1, tickformat: ".0e", ...extra,
  });

  // Curves get a shade of their type's hue by rank within the type (c.shade), pruned ones faded.
  function curveTrace(c, y, x, extra) {
    const pruned = c.group === "pruned";
    return {
      type: "scatter", mode: "lines", x, y,
      name: pruned ? `#${c.number} pruned` : `#${c.number}`,
      legendgroup: c.schedule, legendgrouptitle: { text: c.schedule },
      line: { color: shade(c.schedule, pruned ? 0 : c.shade || 0), width: pruned ? 1 : 2,
        dash: pruned ? "dash" : "solid" },
      opacity: pruned ? 0.45 : 1,
      hovertemplate: `${c.schedule} #${c.number}${pruned ? " (pruned)" : ""}<br>epoch %{x}: %{y:.4g}<extra></extra>`,
      ...extra,
    };
  }

  // Numbers each curve's rank among the top curves of its schedule type (c.shade).
  function rankShades(items) {
    const seen = new Map();
    for (const c of items) {
      if (c.group === "pruned") continue;
      const n = seen.get(c.schedule) || 0;
      c.shade = n;
      seen.set(c.schedule, n + 1);
    }
    return items;
  }

  // A message in place of a chart (removing the chart if there was one).
  function placeholder(div, text) {
    if (window.Plotly) window.Plotly.purge(div);
    div.replaceChildren(el("p", { className: "message" }, text));
  }

  // Plotly.react into a div that may hold a placeholder message.
  function react(div, traces, lay) {
    div.querySelector(":scope > .message")?.remove();
    return window.Plotly.react(div, traces, lay, PLOT_CONFIG);
  }

  async function drawStudyCharts(name, study, results) {
    const Plotly = await plotly();
    const ids = ["chart-lr", "chart-learning", "chart-scatter"];
    if (!study.counts.COMPLETE) {
      // One sentence instead of empty axes.
      for (const id of ids) placeholder($(id), NO_COMPLETE);
      $("scatter-caption").textContent = "Objective vs learning rate";
      await drawLrRange(Plotly, study.lr_range);
      return;
    }
    const items = rankShades(results.curves.items);
    const top = items.filter((c) => c.group !== "pruned");
    const epochAxis = { title: { text: "epoch" }, dtick: study.max_epochs <= 20 ? 1 : undefined };
    await Promise.all([
      react($("chart-lr"),
        top.map((c) => curveTrace(c, c.lr_curve, c.lr_curve.map((_, i) => i))),
        layout({ xaxis: epochAxis, yaxis: logAxis("learning rate") })),
      react($("chart-learning"),
        items.map((c) => curveTrace(c, c.values, c.epochs)),
        layout({ xaxis: epochAxis, yaxis: { title: { text: study.metric } } })),
      drawScatter(Plotly, name, study, results.scatter),
      drawLrRange(Plotly, study.lr_range),
    ]);
  }

  function drawImportance(Plotly, importance) {
    const div = $("chart-importance");
    if (importance.unavailable) {
      placeholder(div, `Not enough finished trials to rank the parameters yet (${importance.unavailable}).`);
      return Promise.resolve();
    }
    if (importance.warning) {
      // Too few trials for a ranking to mean anything: say so instead of drawing bars.
      placeholder(div, `Parameter importance is ${importance.warning}.`);
      return Promise.resolve();
    }
    div.querySelector(".message")?.remove();
    const names = Object.keys(importance.importances).reverse(); // largest at the top
    return Plotly.react(div, [{
      type: "bar", orientation: "h", name: importance.evaluator,
      y: names, x: names.map((n) => importance.importances[n]),
      marker: { color: "#2f6fde" },
      hovertemplate: "%{y}: %{x:.3f}<extra></extra>",
    }], layout({
      yaxis: { automargin: true },
      xaxis: { title: { text: `importance (${importance.evaluator}, ${importance.n_complete} complete trials)` } },
    }), PLOT_CONFIG);
  }

  // An `auto` study's LR range test (Smith): the smoothed training loss while the learning
  // rate rose exponentially, with the bounds the trials sample in shaded. Other studies
  // have none: no chart at all, not an empty one.
  function drawLrRange(Plotly, range) {
    const box = $("lr-range-box");
    const div = $("chart-lr-range");
    if (!range || !Array.isArray(range.lrs) || !range.lrs.length) {
      box.hidden = true;
      Plotly.purge(div);
      return Promise.resolve();
    }
    box.hidden = false;
    const finite = range.losses.filter(Number.isFinite);
    const lowest = Math.min(...finite);
    // A diverging tail would flatten the interesting part: the y axis stops a little above
    // the highest loss seen before the chosen upper bound.
    const upTo = range.losses.filter((l, i) => Number.isFinite(l) && range.lrs[i] <= range.high);
    const top = Math.min(Math.max(...finite), Math.max(...(upTo.length ? upTo : finite)) * 1.15);
    const pad = (top - lowest) * 0.05 || Math.abs(top) * 0.05 || 1;
    const yRange = [lowest - pad, top + pad];
    const bound = (which, x) => ({
      type: "scatter", mode: "lines", x: [x, x], y: yRange, name: `${which} ${lr(x)}`,
      meta: which, line: { color: "#2f6fde", width: 1.5, dash: "dash" },
      hovertemplate: `${which} bound: ${lr(x)}<extra></extra>`,
    });
    $("lr-range-caption").textContent = `LR range test: ${range.batches ?? range.lrs.length} batches` +
      `${range.diverged ? ", stopped when the loss diverged" : ""}; trials sample between ` +
      `${lr(range.low)} and ${lr(range.high)} (shaded)`;
    return Plotly.react(div, [
      {
        type: "scatter", mode: "lines", x: range.lrs, y: range.losses, name: "loss", meta: "curve",
        line: { color: "#1d2430", width: 2 },
        hovertemplate: "lr %{x:.2e}: loss %{y:.4g}<extra></extra>",
      },
      bound("low", range.low),
      bound("high", range.high),
    ], layout({
      // One tick per decade, written as a power of ten.
      xaxis: { title: { text: "learning rate" }, type: "log", dtick: 1, exponentformat: "power" },
      yaxis: { title: { text: "training loss (smoothed)" }, range: yRange },
      shapes: [{
        type: "rect", xref: "x", yref: "paper", x0: range.low, x1: range.high, y0: 0, y1: 1,
        fillcolor: "rgba(47, 111, 222, 0.12)", line: { width: 0 }, layer: "below",
      }],
    }), PLOT_CONFIG);
  }

  function drawScatter(Plotly, name, study, scatter) {
    const bySchedule = new Map();
    // Complete trials first: a trace's legend entry takes its first point's symbol.
    const order = scatter.numbers.map((_, i) => i)
      .sort((a, b) => (scatter.states[a] === "PRUNED") - (scatter.states[b] === "PRUNED"));
    order.forEach((i) => {
      const number = scatter.numbers[i];
      const schedule = scatter.schedules[i] || "?";
      if (!bySchedule.has(schedule)) bySchedule.set(schedule, { x: [], y: [], n: [], symbol: [] });
      const t = bySchedule.get(schedule);
      t.x.push(scatter.learning_rates[i]);
      t.y.push(scatter.values[i]);
      t.n.push(number);
      t.symbol.push(scatter.states[i] === "PRUNED" ? "circle-open" : "circle");
    });
    const traces = [...bySchedule].map(([schedule, t]) => ({
      type: "scatter", mode: "markers", name: schedule, x: t.x, y: t.y, customdata: t.n,
      marker: { color: colour(schedule), symbol: t.symbol, size: 6, opacity: 0.75 },
      hovertemplate: `${schedule} #%{customdata}<br>lr %{x:.2e}: %{y:.4g}<extra></extra>`,
    }));
    const shown = scatter.numbers.length;
    $("scatter-caption").textContent = `Objective vs learning rate (${shown === scatter.total
      ? `${shown} finished trials` : `${shown} of ${scatter.total} finished trials, evenly sampled`}; open: pruned)`;
    const div = $("chart-scatter");
    div.dataset.study = name;
    return react(div, traces, layout({
      xaxis: logAxis("learning rate"),
      yaxis: { title: { text: `final ${study.metric}` } },
    })).then(() => {
      if (!div.dataset.clickable) { // a point opens its trial; bind once per div
        div.dataset.clickable = "1";
        div.on("plotly_click", (e) => {
          const number = e.points[0] && e.points[0].customdata;
          if (number !== undefined) location.hash = trialHash(div.dataset.study, number);
        });
      }
    });
  }

  window.LR.charts = {
    PLOT_CONFIG, NO_COMPLETE, colour, shade, layout, logAxis, curveTrace, rankShades,
    placeholder, react, drawStudyCharts, drawImportance, prefetchPlotly, plotlyWhenIdle,
  };
})();
