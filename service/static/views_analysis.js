// lrsearch dashboard: what the study page shows beside its leaderboard (running trials,
// pace, failures, the study's note) and the analysis view (#/study/NAME/analysis):
// optimisation history, parallel coordinates and per-schedule slices, all drawn from
// bounded samples (the captions say how many of how many).
"use strict";

(() => {
  const LR = window.LR;
  const { $, el, api, enc, num, plain, studyHash, trialHash, setCrumbs, show, markRendered,
    whoami, plotly } = LR;
  const RUNNING_SHOWN = 10; // as `lrsearch status --watch` (cli/watch.py MAX_RUNNING_SHOWN)
  // History, parallel coordinates and slices draw one marker or line per sampled trial as
  // SVG: 1,000 (not 2,000) keep the page under a second with a warm cache at 20,000 trials
  // (docs/dashboard.md, "Every view at 20,000 trials").
  const POINTS = 1000;
  const ENDED = ["finished", "cancelled", "failed"];

  // --------------------------------------------------------------- pace (ETA)

  // The same numbers as `lrsearch status --watch` (cli/watch.py RateMeter and rate_text):
  // trials per hour from what this page saw finish, else since the study was created.
  const meter = { study: null, samples: [] };

  function perHour(study) {
    if (meter.study !== study.name) Object.assign(meter, { study: study.name, samples: [] });
    meter.samples.push([Date.now(), study.finished]);
    const [[t0, f0], [t1, f1]] = [meter.samples[0], meter.samples[meter.samples.length - 1]];
    if (meter.samples.length >= 2 && f1 > f0 && t1 > t0) return ((f1 - f0) / (t1 - t0)) * 3600e3;
    const hours = (Date.now() - Date.parse(study.created_at)) / 3600e3;
    return study.finished && hours > 0 ? study.finished / hours : null;
  }

  function duration(seconds) {
    if (seconds < 90) return `${seconds.toFixed(0)} s`;
    if (seconds < 90 * 60) return `${(seconds / 60).toFixed(0)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function rateText(study, rate) {
    const remaining = Math.max(0, study.n_trials - study.finished);
    if (ENDED.includes(study.state)) return rate ? `${rate.toFixed(1)} trials/h` : "ended";
    if (rate === null) return "trials/h: not known yet (no finished trial)";
    const eta = study.state === "paused" ? "paused" : duration((remaining / rate) * 3600);
    return `${rate.toFixed(1)} trials/h, ETA ${eta} for ${remaining} trials`;
  }

  // ------------------------------------------------------------ running trials

  const NOTHING_TO_DRAW = () => Promise.resolve();

  // The running trials (worker, elapsed time, epoch reached), read again on every refresh of
  // the study page: two bounded requests. Resolves, once the table is drawn, to the function
  // that draws their learning curves so far.
  async function updateRunning(token, name, study) {
    const box = $("running-box");
    if (!study.counts.RUNNING) {
      box.hidden = true;
      $("running-table").tBodies[0].replaceChildren();
      if (window.Plotly) window.Plotly.purge($("chart-running"));
      return NOTHING_TO_DRAW;
    }
    const page = await api(`/studies/${enc(name)}/trials?state=RUNNING&limit=${RUNNING_SHOWN}`);
    const numbers = page.items.map((t) => t.number);
    const curves = numbers.length ? await api(`/studies/${enc(name)}/curves?numbers=${numbers.join(",")}`) : { items: [] };
    if (token !== LR.current()) return NOTHING_TO_DRAW;
    const byNumber = new Map(curves.items.map((c) => [c.number, c]));
    box.hidden = false;
    $("running-table").tBodies[0].replaceChildren(...page.items.map((t) => {
      const c = byNumber.get(t.number);
      const latest = c && c.values.length ? c.values[c.values.length - 1] : null;
      const epochs = c ? c.epochs.length : t.epochs_run;
      return el("tr", { "data-number": t.number },
        el("td", { className: "num", "data-field": "number" }, el("a", { href: trialHash(name, t.number) }, `#${t.number}`)),
        el("td", { "data-field": "schedule" }, plain(t.schedule)),
        el("td", { className: "num", "data-field": "epoch" }, `${epochs}/${study.max_epochs}`),
        el("td", { className: "num", "data-field": "latest" }, num(latest)),
        el("td", { "data-field": "worker" }, plain(t.worker)),
        el("td", { className: "num", "data-field": "elapsed" }, Number.isFinite(t.duration_s) ? duration(t.duration_s) : "—"));
    }));
    return () => drawRunning(token, study, page.items, byNumber);
  }

  async function drawRunning(token, study, running, byNumber) {
    const { react, layout, curveTrace } = LR.charts;
    const shades = new Map();
    const traces = running.filter((t) => byNumber.has(t.number)).map((t) => {
      const c = byNumber.get(t.number);
      const schedule = t.schedule || "?";
      const rank = shades.get(schedule) || 0;
      shades.set(schedule, rank + 1);
      return curveTrace({ number: t.number, schedule, group: "running", shade: rank }, c.values, c.epochs,
        { mode: "lines+markers" });
    });
    await plotly();
    if (token !== LR.current()) return;
    await react($("chart-running"), traces, layout({
      xaxis: { title: { text: "epoch" }, range: [-0.2, Math.max(1, study.max_epochs - 1) + 0.2], dtick: study.max_epochs <= 20 ? 1 : undefined },
      yaxis: { title: { text: study.metric } },
    }));
  }

  // ------------------------------------------------------------------ failures

  let failuresSeen = null; // `${name}/${FAIL count}` the shown summary is for

  async function updateFailures(token, name, study) {
    const line = $("study-failures");
    const failed = study.counts.FAIL;
    if (!failed) {
      line.hidden = true;
      failuresSeen = null;
      return line.replaceChildren();
    }
    if (failuresSeen === `${name}/${failed}` && !line.hidden) return;
    const body = await ask("failures", name, "failures?top=3");
    if (token !== LR.current()) return;
    failuresSeen = `${name}/${failed}`;
    const [top, ...others] = body.errors;
    line.hidden = false;
    line.replaceChildren(
      el("strong", { "data-field": "failed" }, `${body.failed} failed`),
      ...(top ? [" · most common error: ",
        el("code", { "data-field": "top-error", title: top.message }, top.message),
        ` × ${top.count}`, " (e.g. ", el("a", { href: trialHash(name, top.example) }, `#${top.example}`), ")"] : []),
      ...(others.length ? [el("span", { className: "muted" }, ` · and ${others.length} other message${others.length > 1 ? "s" : ""}`)] : []));
    line.title = body.errors.map((e) => `${e.count} × ${e.message}`).join("\n");
  }

  // ---------------------------------------------------------------------- note

  // A small, safe markdown subset: paragraphs, `#` headings, - / 1. lists, **strong**,
  // *em*, `code` and [links](http...). Every piece is built as DOM text, never as HTML.
  const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|(\[[^\]]+\]\([^)\s]+\))/g;

  function inline(text) {
    const out = [];
    let at = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > at) out.push(text.slice(at, m.index));
      const [token] = m;
      if (m[1]) out.push(el("code", {}, token.slice(1, -1)));
      else if (m[2]) out.push(el("strong", {}, ...inline(token.slice(2, -2))));
      else if (m[3]) out.push(el("em", {}, ...inline(token.slice(1, -1))));
      else {
        const [, label, href] = token.match(/^\[([^\]]+)\]\(([^)\s]+)\)$/);
        // Only web and in-page links: never javascript: or data: URLs.
        const safe = /^(https?:\/\/|#|\/(?!\/))/i.test(href);
        out.push(safe ? el("a", { href, rel: "noopener noreferrer", target: "_blank" }, ...inline(label)) : token);
      }
      at = m.index + token.length;
    }
    if (at < text.length) out.push(text.slice(at));
    return out;
  }

  function markdown(source) {
    const blocks = [];
    let list = null;
    let para = [];
    const flush = () => {
      if (para.length) blocks.push(el("p", {}, ...inline(para.join(" "))));
      para = [];
    };
    for (const raw of source.replace(/\r\n?/g, "\n").split("\n")) {
      const line = raw.trimEnd();
      const item = line.match(/^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/);
      const heading = line.match(/^(#{1,4})\s+(.*)$/);
      if (item) {
        flush();
        const tag = item[1] ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) blocks.push(list = el(tag, {}));
        list.append(el("li", {}, ...inline(item[3])));
        continue;
      }
      if (!line.trim()) {
        flush();
        list = null;
        continue;
      }
      if (heading) {
        flush();
        list = null;
        blocks.push(el(`h${heading[1].length + 2}`, {}, ...inline(heading[2])));
        continue;
      }
      list = null;
      para.push(line.trim());
    }
    flush();
    return blocks;
  }

  function renderNote(note) {
    const box = $("study-note");
    box.dataset.version = String(note.version);
    box.replaceChildren(...(note.body.trim() ? markdown(note.body)
      : [el("p", { className: "muted" }, "No note yet.")]));
  }

  let noteOf = null; // the study whose note is shown

  async function loadNote(token, name) {
    const me = LR.me();
    const canEdit = me && (me.scope === "submit" || me.scope === "admin");
    $("note-edit").hidden = !canEdit;
    $("note-form").hidden = true;
    const note = await ask("note", name, "note");
    if (token !== LR.current()) return;
    noteOf = name;
    renderNote(note);
    $("note-edit").onclick = () => {
      $("note-input").value = note.body;
      $("note-error").hidden = true;
      $("note-form").hidden = false;
      $("note-edit").hidden = true;
      $("note-input").focus();
    };
    $("note-cancel").onclick = () => {
      $("note-form").hidden = true;
      $("note-edit").hidden = !canEdit;
    };
    $("note-form").onsubmit = async (event) => {
      event.preventDefault();
      try {
        const saved = await api(`/studies/${enc(name)}/note`, { method: "PUT", body: { body: $("note-input").value } });
        if (token !== LR.current()) return;
        note.body = saved.body;
        renderNote(saved);
        $("note-form").hidden = true;
        $("note-edit").hidden = false;
      } catch (e) {
        $("note-error").textContent = `Not saved: ${e.status ? `${e.status}: ` : ""}${e.message}`;
        $("note-error").hidden = false;
      }
    };
  }

  // The note and the failures are asked for with the study page's first requests, before
  // the study's counts say whether it has failures (a study without any answers at once):
  // `early` keeps those answers until update(first) takes or drops them.
  const early = new Map(); // what -> { name, answer }

  function prefetch(name) {
    early.clear();
    for (const [what, path] of [["note", "note"], ["failures", "failures?top=3"]]) {
      const answer = api(`/studies/${enc(name)}/${path}`);
      answer.catch(() => {}); // whoever takes it shows the error
      early.set(what, { name, answer });
    }
  }

  function ask(what, name, path) {
    const asked = early.get(what);
    early.delete(what);
    return asked && asked.name === name ? asked.answer : api(`/studies/${enc(name)}/${path}`);
  }

  // Called by the study page when it is drawn (first, after prefetch) and on every refresh.
  // Resolves once the text and tables are drawn, to { drawCharts }, which the page calls
  // when it draws its charts.
  async function update(token, name, study, first) {
    $("study-pace").hidden = !LR.isLive(study);
    $("study-pace").textContent = `${study.epochs_spent} epochs spent · ${rateText(study, perHour(study))}`;
    const asked = [
      updateRunning(token, name, study),
      updateFailures(token, name, study),
      first || noteOf !== name ? loadNote(token, name) : null,
    ];
    early.clear(); // an answer not taken now would be stale later
    const [drawCharts] = await Promise.all(asked);
    return { drawCharts };
  }

  // ------------------------------------------------------------------ analysis

  async function showAnalysis(token, name) {
    setCrumbs([[name, studyHash(name)], ["analysis", null]]);
    $("analysis-title").textContent = `Analysis of ${name}`;
    // A page of charts only: plotly.js starts while the answers come in.
    const charts = plotly();
    charts.catch(() => {}); // awaited below, after the answers
    const asked = api(`/studies/${enc(name)}`);
    const slice = (study, schedule) => (study.counts.COMPLETE
      ? api(`/studies/${enc(name)}/params?schedule=${enc(schedule)}&limit=${POINTS}`)
      : Promise.resolve(null));
    const firstSchedule = (study) => (study.best && study.best.schedule) || study.definition.search_space.schedules[0];
    // The first slice is asked for as soon as the study says which schedule it shows.
    const firstSlice = asked.then((study) => slice(study, firstSchedule(study)));
    firstSlice.catch(() => {}); // awaited below
    const [study, history, params] = await Promise.all([
      asked,
      api(`/studies/${enc(name)}/history?limit=${POINTS}`),
      api(`/studies/${enc(name)}/params?limit=${POINTS}`),
      whoami(),
    ]);
    if (token !== LR.current()) return;
    show("analysis-view");
    const schedules = study.definition.search_space.schedules;
    const select = $("slice-schedule");
    select.replaceChildren(...schedules.map((s) => el("option", { value: s }, s)));
    select.value = firstSchedule(study);
    await charts;
    const drawSlice = async (answer) => {
      const sample = await answer;
      if (token === LR.current()) await drawSlices(study, select.value, sample);
    };
    select.onchange = () => drawSlice(slice(study, select.value)).catch((e) => LR.fail(token, e));
    await Promise.all([drawHistory(study, history), drawParallel(study, params), drawSlice(firstSlice)]);
    if (token !== LR.current()) return;
    markRendered("analysis");
  }

  const sampled = (shown, total, what) =>
    (shown === total ? `${total} ${what}` : `${shown} of ${total} ${what}, evenly sampled`);

  function drawHistory(study, h) {
    const { react, layout, placeholder, NO_COMPLETE } = LR.charts;
    const ids = ["chart-history", "chart-history-epochs"];
    if (!study.counts.COMPLETE) {
      for (const id of ids) placeholder($(id), NO_COMPLETE);
      $("history-caption").textContent = "Optimisation history";
      return Promise.resolve();
    }
    $("history-caption").textContent = `Optimisation history: best ${study.metric} so far ` +
      `(${sampled(h.numbers.length, h.total, "finished trials")} as points; open: pruned)`;
    const draw = (id, x, bestX, title) => {
      const lastX = Math.max(x.length ? x[x.length - 1] : 0, bestX[bestX.length - 1]);
      return react($(id), [
        {
          type: "scatter", mode: "markers", name: "trial", x, y: h.values, customdata: h.numbers,
          marker: { color: "#8aa4d6", size: 5, symbol: h.states.map((s) => (s === "PRUNED" ? "circle-open" : "circle")) },
          hovertemplate: "#%{customdata}: %{y:.4g}<extra></extra>",
        },
        {
          type: "scatter", mode: "lines", name: "best so far", line: { shape: "hv", color: "#1d2430", width: 2 },
          x: [...bestX, lastX], y: [...h.best_values, h.best_values[h.best_values.length - 1]],
          hovertemplate: "best %{y:.4g}<extra></extra>",
        },
      ], layout({ xaxis: { title: { text: title } }, yaxis: { title: { text: study.metric } } }));
    };
    return Promise.all([
      draw("chart-history", h.numbers, h.best_numbers, "trial number"),
      draw("chart-history-epochs", h.epochs, h.best_epochs, "epochs spent (all finished trials)"),
    ]);
  }

  // A parameter's column as an axis of the parallel coordinates: each value placed in
  // [0, 1] (categories evenly, a range over two decades on a log scale), with tick labels.
  function axis(label, values) {
    const present = values.filter((v) => v !== null && v !== undefined);
    if (present.some((v) => typeof v !== "number")) {
      const cats = [...new Set(present.map(String))].sort();
      const at = (i) => (cats.length > 1 ? i / (cats.length - 1) : 0.5);
      return { label, pos: values.map((v) => (v === null || v === undefined ? null : at(cats.indexOf(String(v))))),
        ticks: cats.map((c, i) => [at(i), c]) };
    }
    const log = present.every((v) => v > 0) && Math.max(...present) / Math.min(...present) >= 100;
    const f = log ? Math.log10 : (v) => v;
    const lo = Math.min(...present.map(f));
    const hi = Math.max(...present.map(f));
    const scale = (v) => (hi > lo ? (f(v) - lo) / (hi - lo) : 0.5);
    const text = (v) => (log ? `1e${Math.round(v)}` : String(Number(v.toPrecision(3))));
    const ticks = log
      ? Array.from({ length: Math.floor(hi) - Math.ceil(lo) + 1 }, (_, i) => Math.ceil(lo) + i)
        .map((d) => [(d - lo) / (hi - lo || 1), text(d)])
      : [[0, text(lo)], [1, text(hi)]];
    return { label: log ? `${label} (log)` : label, pos: values.map((v) => (typeof v === "number" ? scale(v) : null)), ticks };
  }

  const COMMON = ["schedule", "learning_rate", "batch_size", "dropout", "warmup_epochs", "weight_init"];
  const BINS = ["#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725"]; // viridis

  // Parallel coordinates drawn as SVG lines (no WebGL needed): one line per trial across the
  // parameters' axes and the objective's, coloured by objective (6 bins, best in yellow).
  function drawParallel(study, s) {
    const { react, placeholder, NO_COMPLETE } = LR.charts;
    const div = $("chart-parallel");
    if (!study.counts.COMPLETE || !s.numbers.length) {
      $("parallel-caption").textContent = "Parallel coordinates";
      placeholder(div, NO_COMPLETE);
      return Promise.resolve();
    }
    $("parallel-caption").textContent = `Parallel coordinates, coloured by ${study.metric} ` +
      `(${sampled(s.numbers.length, s.total, "complete trials")})`;
    const axes = COMMON.filter((p) => s.params[p] && s.params[p].some((v) => v !== null))
      .map((p) => axis(p, s.params[p]));
    const objective = axis(study.metric, s.values);
    axes.push(objective);
    const better = study.direction === "maximize" ? (v) => v : (v) => 1 - v;
    const bins = BINS.map(() => ({ x: [], y: [], n: [] }));
    s.numbers.forEach((number, i) => {
      const bin = bins[Math.min(BINS.length - 1, Math.floor(better(objective.pos[i]) * BINS.length))];
      axes.forEach((a, k) => {
        bin.x.push(k);
        bin.y.push(a.pos[i]);
        bin.n.push(number);
      });
      bin.x.push(null);
      bin.y.push(null);
      bin.n.push(null);
    });
    const traces = bins.map((b, i) => ({
      type: "scatter", mode: "lines", x: b.x, y: b.y, customdata: b.n, name: `bin ${i + 1}`,
      line: { color: BINS[i], width: 1 }, opacity: 0.55, connectgaps: false, showlegend: false,
      hovertemplate: "#%{customdata}<extra></extra>",
    }));
    const annotations = axes.flatMap((a, k) => [
      { x: k, y: 1.04, yref: "y", text: a.label, showarrow: false, yanchor: "bottom", font: { size: 11 } },
      ...a.ticks.map(([y, text]) => ({ x: k, y, text, showarrow: false, xanchor: "right", xshift: -4, font: { size: 10, color: "#667085" } })),
    ]);
    const shapes = axes.map((_, k) => ({ type: "line", x0: k, x1: k, y0: 0, y1: 1, line: { color: "#98a2b3", width: 1 } }));
    return react(div, traces, {
      margin: { l: 72, r: 24, t: 36, b: 16 }, hovermode: "closest", uirevision: "keep",
      xaxis: { visible: false, range: [-0.6, axes.length - 0.7] },
      yaxis: { visible: false, range: [-0.04, 1.12] },
      annotations, shapes,
    });
  }

  function drawSlices(study, schedule, s) {
    const { react, layout, logAxis, shade, NO_COMPLETE } = LR.charts;
    const box = $("slice-charts");
    if (window.Plotly) for (const div of box.querySelectorAll(".chart")) window.Plotly.purge(div);
    if (!s || !s.numbers.length) {
      $("slice-caption").textContent = s ? `No completed ${schedule} trial yet.` : NO_COMPLETE;
      box.replaceChildren();
      return Promise.resolve();
    }
    $("slice-caption").textContent = `${study.metric} against each parameter of ${schedule} trials ` +
      `(${sampled(s.numbers.length, s.total, `complete ${schedule} trials`)})`;
    const names = Object.keys(s.params).filter((p) => p !== "schedule" &&
      (COMMON.includes(p) || p.startsWith(`${schedule}.`)) && s.params[p].some((v) => v !== null));
    const figures = names.map((p) => {
      const div = el("div", { className: "chart small", "data-param": p });
      return [p, div, el("figure", {}, el("figcaption", {}, p), div)];
    });
    box.replaceChildren(...figures.map(([, , f]) => f));
    return Promise.all(figures.map(([p, div]) => {
      const xs = s.params[p];
      const present = xs.filter((v) => typeof v === "number" && v > 0);
      const log = present.length === xs.length && Math.max(...present) / Math.min(...present) >= 100;
      return react(div, [{
        type: "scatter", mode: "markers", x: xs, y: s.values, customdata: s.numbers,
        marker: { color: shade(schedule, 0), size: 6, opacity: 0.75 },
        hovertemplate: `${p} %{x}<br>#%{customdata}: %{y:.4g}<extra></extra>`,
      }], layout({ showlegend: false, margin: { l: 56, r: 12, t: 8, b: 40 },
        xaxis: log ? logAxis(p) : { title: { text: p } }, yaxis: { title: { text: study.metric } } }));
    }));
  }

  LR.views.analysis = showAnalysis;
  LR.study = { update, prefetch, markdown };
})();
