// lrsearch dashboard: plain JavaScript, no build step, served by `lrsearch serve`.
// It reads only the REST API (/api/v1) with the user's API key, and asks for
// aggregates and a bounded number of curves, never for every trial of a study.
//
// Routes (after #): #/ studies, #/study/NAME, #/study/NAME/trial/N, #/task/NAME (best
// schedules across the task's studies).
// Tests and the render benchmark wait for document.body.dataset.rendered
// (the view's name) and read window.__lrsearchRendered (performance.now()).
"use strict";

(() => {
  const API = "/api/v1";
  const KEY_STORAGE = "lrsearch.apiKey";
  const POLL_MS = 3000;
  const CURVES_PER_SCHEDULE = 3;
  const TASK_TOP = 3; // trials per schedule type on the task page
  const PRUNED_CURVES = 10;
  const SCATTER_POINTS = 2000;
  const IMPORTANCE_EVERY_MS = 30000;
  const COLOURS = {
    step: "#1f77b4", exponential: "#ff7f0e", cosine: "#2ca02c",
    plateau: "#d62728", cyclic: "#9467bd", warmup: "#8c564b",
  };
  const EXTRA_COLOURS = ["#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  const PLOT_CONFIG = { displaylogo: false, responsive: true };

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  // plotly.js comes in an async <script>: fetching data need not wait for it, drawing does.
  const plotlyReady = new Promise((resolve, reject) => {
    if (window.Plotly) return resolve(window.Plotly);
    $("plotly-js").addEventListener("load", () => resolve(window.Plotly));
    $("plotly-js").addEventListener("error", () => reject(new Error("plotly.js did not load")));
  });

  // ---------------------------------------------------------------- API access

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  let apiKey = localStorage.getItem(KEY_STORAGE);
  // A link that carries a key (`lrsearch demo --serve` prints `#/study/NAME?key=...`):
  // keep the key as if typed, and take it out of the address bar and the history.
  const keyAt = location.hash.indexOf("?key=");
  if (keyAt >= 0) {
    try {
      apiKey = decodeURIComponent(location.hash.slice(keyAt + 5));
      localStorage.setItem(KEY_STORAGE, apiKey);
    } catch {
      // a malformed key: ask for one as usual
    }
    history.replaceState(null, "", location.pathname + location.search + location.hash.slice(0, keyAt));
  }
  let me = null; // {tenant, scope} of apiKey, from GET /whoami
  let keysChecked = true; // false when the service runs without keys (LRSEARCH_AUTH_DISABLED)

  async function api(path, { method = "GET", key = apiKey } = {}) {
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(API + path, { method, headers, cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      // Errors are RFC 9457 problems: `detail` says what went wrong.
      throw new ApiError(response.status, (body && body.detail) || response.statusText);
    }
    return body;
  }

  // ------------------------------------------------------------------- helpers

  // Builds an element; children are nodes or strings (set as text, never parsed as HTML).
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (name === "className") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  const num = (v, digits = 4) => (Number.isFinite(v) ? v.toPrecision(digits) : "—");
  const lr = (v) => (Number.isFinite(v) ? v.toExponential(2) : "—");
  const fixed = (v, digits = 3) => (Number.isFinite(v) ? v.toFixed(digits) : "—");
  const plain = (v) => (v === null || v === undefined ? "—" : String(v));
  const studyHash = (name) => `#/study/${enc(name)}`;
  const trialHash = (name, number) => `${studyHash(name)}/trial/${number}`;
  const taskHash = (task) => `#/task/${enc(task)}`;

  const scheduleOrder = [];
  function colour(schedule) {
    if (COLOURS[schedule]) return COLOURS[schedule];
    if (!scheduleOrder.includes(schedule)) scheduleOrder.push(schedule);
    return EXTRA_COLOURS[scheduleOrder.indexOf(schedule) % EXTRA_COLOURS.length];
  }

  function age(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = false;
  }

  function setCrumbs(items) {
    $("crumbs").replaceChildren(
      el("a", { href: "#/" }, "Studies"),
      ...items.flatMap(([text, href]) => [" / ", href ? el("a", { href }, text) : el("span", {}, text)]),
    );
  }

  function badge(node, state) {
    node.textContent = state;
    node.className = `badge ${String(state).toLowerCase()}`;
  }

  // --------------------------------------------------------- views and routing

  const VIEWS = ["key-view", "studies-view", "study-view", "trial-view", "task-view"];
  const CHARTS = ["chart-lr", "chart-learning", "chart-importance", "chart-scatter",
    "chart-lr-range", "trial-chart-lr", "trial-chart-learning"];
  let view = 0; // bumped on every navigation: stale responses and polls check it and stop
  let pollTimer = null;

  function show(id) {
    for (const v of VIEWS) $(v).hidden = v !== id;
  }

  function markRendered(name) {
    window.__lrsearchRendered = performance.now();
    document.body.dataset.rendered = name;
  }

  // Removes every piece of data from the page (wrong or forgotten key).
  function clearData() {
    for (const id of ["studies-table", "leaderboard", "trial-params", "trial-facts", "trial-metrics"]) {
      $(id).tBodies[0].replaceChildren();
    }
    $("trial-metrics").tHead.replaceChildren();
    if (window.Plotly) for (const id of CHARTS) window.Plotly.purge($(id));
    for (const id of ["study-name", "study-facts", "study-progress", "trial-title", "whoami",
      "pytorch-code", "pytorch-caption"]) {
      $(id).textContent = "";
    }
    $("pytorch-box").hidden = true;
    $("lr-range-box").hidden = true;
    $("task-best").replaceChildren();
  }

  function askForKey(message) {
    view++;
    clearTimeout(pollTimer);
    apiKey = null;
    me = null;
    localStorage.removeItem(KEY_STORAGE);
    clearData();
    delete document.body.dataset.rendered;
    $("error").hidden = true;
    $("forget-key").hidden = true;
    $("key-error").textContent = message || "";
    $("key-error").hidden = !message;
    setCrumbs([]);
    show("key-view");
    $("key-input").focus();
  }

  function fail(token, error) {
    if (token !== view) return;
    if (error instanceof ApiError && error.status === 401) {
      askForKey(`The stored API key was refused (${error.message}). Enter a valid key.`);
      return;
    }
    showError(error instanceof ApiError ? `${error.status}: ${error.message}` : String(error));
  }

  // Runs fn again in POLL_MS unless the user navigated away; paused while the tab is hidden.
  // fn schedules its own next run; after a network error or a 5xx this does, so that a
  // restarted service or database is waited out.
  function pollLater(token, fn) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(() => {
      if (token !== view) return;
      if (document.hidden) return pollLater(token, fn);
      fn().then(() => { $("error").hidden = true; }, (e) => {
        fail(token, e);
        if (token === view && !(e instanceof ApiError && e.status < 500)) pollLater(token, fn);
      });
    }, POLL_MS);
  }

  function route() {
    const token = ++view;
    clearTimeout(pollTimer);
    delete document.body.dataset.rendered;
    $("error").hidden = true;
    if (!apiKey && keysChecked) return askForKey("");
    $("forget-key").hidden = !keysChecked;
    let parts = [];
    try {
      parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    } catch {
      // a malformed address: the studies list
    }
    const [kind, name, sub, number] = parts;
    let run;
    if (kind === "study" && name && sub === "trial" && /^\d+$/.test(number || "")) {
      run = showTrial(token, name, Number(number));
    } else if (kind === "study" && name) {
      run = showStudy(token, name);
    } else if (kind === "task" && name) {
      run = showTask(token, name);
    } else {
      run = showStudies(token);
    }
    run.catch((e) => fail(token, e));
  }

  function showWhoami() {
    $("whoami").textContent = keysChecked
      ? `tenant ${me.tenant} · ${me.scope} key` : "API keys are not checked by this service";
  }

  async function whoami() {
    if (!me) {
      me = await api("/whoami");
      showWhoami();
    }
    return me;
  }

  // ------------------------------------------------------------------ studies

  // A study whose numbers may still change: pages showing it keep polling.
  const isLive = (s) => s.state === "running" || s.state === "paused" ||
    s.counts.RUNNING + s.counts.WAITING > 0;

  async function showStudies(token) {
    setCrumbs([]);
    // name -> list item of GET /studies, which carries counts, progress and best value:
    // one request per page, never one per study.
    const studies = new Map();
    let cursor = null;

    async function loadPage(more) {
      const page = await api(`/studies?limit=50${more && cursor ? `&cursor=${enc(cursor)}` : ""}`);
      if (more || cursor === null) cursor = page.next_cursor;
      for (const s of page.items) studies.set(s.name, s);
    }
    await Promise.all([loadPage(false), whoami()]);
    if (token !== view) return;
    renderStudies([...studies.values()], cursor);
    show("studies-view");
    markRendered("studies");

    $("studies-more").onclick = async () => {
      await loadPage(true);
      if (token === view) renderStudies([...studies.values()], cursor);
    };
    // Live: the newest page is read again (one request); new studies appear.
    const refresh = async () => {
      const first = await api("/studies?limit=50");
      for (const s of first.items) studies.set(s.name, s);
      if (token !== view) return;
      renderStudies([...studies.values()], cursor);
      pollLater(token, refresh);
    };
    pollLater(token, refresh);
  }

  function stateCell(s) {
    const cell = el("td", {}, el("span", { className: `badge ${s.state}` }, s.state));
    if (s.state_reason) {
      // A failed study says why, in the list itself.
      cell.append(" ", el("span", { className: "reason muted", "data-field": "state-reason" }, s.state_reason));
      cell.title = s.state_reason;
    }
    return cell;
  }

  function renderStudies(studies, cursor) {
    // Newest first, as the API lists them.
    studies.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
    $("studies-table").tBodies[0].replaceChildren(...studies.map((s) => el("tr", { "data-study": s.name },
      el("td", {}, el("a", { href: studyHash(s.name) }, s.name)),
      el("td", { "data-field": "task" }, el("a", { href: taskHash(s.task) }, s.task)),
      stateCell(s),
      el("td", { className: "num", "data-field": "progress" }, `${s.finished}/${s.n_trials}`),
      el("td", { className: "num" }, s.counts.RUNNING),
      el("td", { className: "num" }, num(s.best_value)),
      el("td", { title: s.created_at }, age(s.created_at)),
    )));
    $("studies-empty").hidden = studies.length > 0;
    $("studies-more").hidden = !cursor;
  }

  // -------------------------------------------------------------------- study

  async function loadResults(name) {
    const [schedules, curves, scatter] = await Promise.all([
      api(`/studies/${enc(name)}/schedules`),
      api(`/studies/${enc(name)}/curves?per_schedule=${CURVES_PER_SCHEDULE}&pruned=${PRUNED_CURVES}`),
      api(`/studies/${enc(name)}/scatter?limit=${SCATTER_POINTS}`),
    ]);
    return { schedules, curves, scatter };
  }

  // Results change only when trials finish; counts of running ones do not matter.
  const resultsKey = (s) => [s.counts.COMPLETE, s.counts.PRUNED, s.counts.FAIL].join("/");
  // Parameter importance is the one costly endpoint (the service fits a model over the
  // trials), so it never holds up the other charts, only one request is in flight, and
  // while trials keep finishing it is asked again at most every IMPORTANCE_EVERY_MS.
  function importanceFeed(token, name) {
    let inFlight = null;
    let askedFor = null; // resultsKey the last request was made for
    let askedAt = 0;
    let pending = null; // a key that must still be asked for (the study stopped)
    const fetchOnce = () => api(`/studies/${enc(name)}/importance`).catch((e) => {
      // 409: too few completed trials yet; the chart says so instead.
      if (e instanceof ApiError && e.status === 409) return { unavailable: e.message };
      throw e;
    });
    const want = (key, final) => {
      if (key === askedFor) return inFlight || Promise.resolve();
      if (inFlight) {
        if (final) pending = key;
        return inFlight;
      }
      if (!final && Date.now() - askedAt < IMPORTANCE_EVERY_MS) return Promise.resolve();
      askedFor = key;
      askedAt = Date.now();
      inFlight = fetchOnce()
        .then(async (importance) => {
          if (token === view) await drawImportance(await plotlyReady, importance);
        })
        .finally(() => {
          inFlight = null;
          if (pending !== null && token === view) want(pending, true).catch((e) => fail(token, e));
          pending = null;
        });
      return inFlight;
    };
    return want;
  }

  async function showStudy(token, name) {
    setCrumbs([[name, null]]);
    $("pytorch-box").hidden = true; // another study's code must not linger
    $("study-name").textContent = name;
    window.__lrsearchTimings = {};
    placeholder($("chart-importance"), "Computing parameter importance…");
    // Everything at once: the study, its results, importance and the key's scope are independent.
    const importance = importanceFeed(token, name);
    const importanceDrawn = importance("first", true);
    importanceDrawn.catch(() => {}); // if the rest fails first, its error is the one shown
    const [study, results] = await Promise.all([
      api(`/studies/${enc(name)}`), loadResults(name), whoami(),
    ]);
    if (token !== view) return;
    window.__lrsearchTimings.data = performance.now();
    show("study-view");
    renderStudyHeader(study);
    renderLeaderboard(name, results.schedules);
    await plotlyReady;
    window.__lrsearchTimings.plotly = performance.now();
    await drawStudyCharts(name, study, results);
    window.__lrsearchTimings.withoutImportance = performance.now();
    await importanceDrawn;
    if (token !== view) return;
    markRendered("study");
    let seen = resultsKey(study);
    let updates = 0;

    const refresh = async () => {
      const now = await api(`/studies/${enc(name)}`);
      if (token !== view) return;
      renderStudyHeader(now);
      if (resultsKey(now) !== seen) {
        const fresh = await loadResults(name);
        if (token !== view) return;
        seen = resultsKey(now);
        renderLeaderboard(name, fresh.schedules);
        await drawStudyCharts(name, now, fresh);
        document.body.dataset.updates = String(++updates);
        importance(seen, !isLive(now)).catch((e) => fail(token, e));
      }
      if (isLive(now)) pollLater(token, refresh);
    };
    $("study-controls").onclick = (event) => control(token, name, event, refresh);
    if (isLive(study)) pollLater(token, refresh);
  }

  function renderStudyHeader(s) {
    badge($("study-state"), s.state);
    const best = s.best ? `best ${s.metric} ${num(s.best.value)} (trial #${s.best.number}, ${s.best.schedule})` : "no completed trial yet";
    $("study-facts").replaceChildren(
      el("a", { href: taskHash(s.task), title: `Best schedules across your studies of ${s.task}`,
        "data-field": "task" }, s.task),
      ` · ${s.direction} ${s.metric} · ${best} · ${s.epochs_spent} epochs trained, ` +
      `${s.epochs_saved} saved by pruning · created ${age(s.created_at)}`);
    const c = s.counts;
    $("study-progress").textContent = `${s.finished}/${s.n_trials} finished · ${c.RUNNING} running · ` +
      `${c.WAITING} waiting · ${c.COMPLETE} complete, ${c.PRUNED} pruned, ${c.FAIL} failed`;
    $("study-progress").dataset.finished = String(s.finished);
    $("study-progress-bar").style.width = `${Math.min(100, (100 * s.finished) / s.n_trials)}%`;
    $("study-live").textContent = isLive(s) ? `live · updated ${new Date().toLocaleTimeString()}` : "";
    renderInfeasible(s.infeasible || []);
    renderWarmStart(s.warm_start);
    // Controls only for keys that may use them (submit or admin scope), and only those that apply.
    const canControl = me && (me.scope === "submit" || me.scope === "admin");
    const open = s.state !== "finished" && s.control_state !== "cancelled";
    const shown = {
      pause: open && s.control_state === "running",
      resume: open && s.control_state === "paused",
      cancel: open,
    };
    for (const button of $("study-controls").querySelectorAll("button")) {
      button.hidden = !canControl || !shown[button.dataset.action];
    }
  }

  // Batch sizes that ran out of GPU memory, per card: the same batch may fit a bigger one.
  function renderInfeasible(list) {
    const line = $("study-infeasible");
    line.hidden = list.length === 0;
    const parts = list.map((b) => el("span", { "data-field": "infeasible" },
      `batch ${b.batch_size ?? "?"} on ${b.device}` +
      (b.memory_gb === null ? "" : ` (${b.memory_gb} GiB)`) +
      ` × ${b.trials} ${b.trials === 1 ? "trial" : "trials"}`));
    line.replaceChildren(...(list.length ? ["Out of GPU memory: "] : []),
      ...parts.flatMap((p, i) => (i ? ["; ", p] : [p])));
  }

  function renderWarmStart(ws) {
    const line = $("study-warm-start");
    line.hidden = !ws;
    if (!ws) return line.replaceChildren();
    const from = Array.isArray(ws.from) ? ws.from.join(", ") : ws.from;
    line.textContent = `Warm-started from: ${from} · ${ws.enqueued.length} enqueued, ` +
      `${ws.skipped.length} skipped`;
    line.title = ws.skipped.map((x) => `${x.study}${x.trial === undefined ? "" : ` #${x.trial}`}: ${x.reason}`).join("\n");
  }

  async function control(token, name, event, refresh) {
    const action = event.target.dataset && event.target.dataset.action;
    if (!action) return;
    if (action === "cancel" && !window.confirm(`Cancel study ${name} for good?`)) return;
    try {
      renderStudyHeader(await api(`/studies/${enc(name)}/${action}`, { method: "POST" }));
      clearTimeout(pollTimer);
      await refresh();
    } catch (e) {
      fail(token, e);
    }
  }

  function renderLeaderboard(name, schedules) {
    // One row per schedule, in the API's order, each cell keeping the API's raw value.
    const cell = (field, raw, className, ...content) =>
      el("td", { "data-field": field, "data-raw": JSON.stringify(raw ?? null), className }, ...content);
    const rows = schedules.items.map((s) => {
      const b = s.best || {};
      return el("tr", { "data-schedule": s.schedule },
        cell("schedule", s.schedule, undefined,
          el("span", { className: "swatch", style: `background:${colour(s.schedule)}` }), s.schedule),
        cell("value", b.value, "num", num(b.value)),
        cell("learning_rate", b.learning_rate, "num", lr(b.learning_rate)),
        cell("batch_size", b.batch_size, "num", plain(b.batch_size)),
        cell("dropout", b.dropout, "num", fixed(b.dropout)),
        cell("weight_init", b.weight_init, undefined, plain(b.weight_init)),
        cell("warmup_epochs", b.warmup_epochs, "num", plain(b.warmup_epochs)),
        cell("epochs_run", b.epochs_run, "num", plain(b.epochs_run)),
        cell("settings", s.settings ?? null, "settings", settingsContent(s.settings)),
        cell("number", b.number, "num",
          b.number === undefined ? "—" : el("a", { href: trialHash(name, b.number) }, `#${b.number}`)),
        cell("n_complete", s.n_complete, "num", s.n_complete),
        cell("n_pruned", s.n_pruned, "num", s.n_pruned),
        cell("n_failed", s.n_failed, "num", s.n_failed),
        cell("median_value", s.median_value, "num", num(s.median_value)),
        cell("confirmed", s.confirmed ?? null, "num", confirmedContent(s.confirmed)),
        cell("pytorch", null, undefined, b.number === undefined ? "—" : copyButton(name, b.number)),
      );
    });
    $("leaderboard").tBodies[0].replaceChildren(...rows);
  }

  // The winner re-trained with other seeds: mean ± std (n), and the types within noise of it.
  function confirmedContent(c) {
    if (!c) return "—";
    const text = `${num(c.mean)} ± ${c.std === null ? "—" : num(c.std)} (${c.n})`;
    if (!c.within_noise.length) return text;
    return el("span", { title: "means within 2 standard errors: not a clear ranking" },
      text, el("span", { className: "muted" }, ` ≈ ${c.within_noise.join(", ")}`));
  }

  // A winner's schedule as PyTorch takes it: the scheduler call (what `lrsearch best` prints),
  // with its LinearLR warm-up, if any, on a line of its own.
  function settingsContent(settings) {
    if (!settings) return "—";
    const wrap = el("span", {}, el("code", { className: "call" }, settings.call));
    if (settings.warmup) wrap.append(el("span", { className: "warmup muted" }, `after warm-up ${settings.warmup}`));
    return wrap;
  }

  function copyButton(name, number) {
    const button = el("button", { type: "button", className: "copy-pytorch", "data-trial": number },
      "Copy as PyTorch");
    button.addEventListener("click", () => copyPytorch(name, number));
    return button;
  }

  // The trial's optimizer + scheduler code (GET .../pytorch), shown in a <pre> to
  // read or select, and copied to the clipboard where the browser lets us.
  async function copyPytorch(name, number) {
    const token = view;
    let body;
    try {
      body = await api(`/studies/${enc(name)}/trials/${number}/pytorch`);
    } catch (e) {
      showError(`Trial #${number} as PyTorch: ${e.message}`);
      return;
    }
    if (token !== view) return;
    $("pytorch-code").textContent = body.code;
    let copied = false;
    try {
      await navigator.clipboard.writeText(body.code);
      copied = true;
    } catch {
      // No clipboard (not a secure context, or permission refused): the <pre> still shows it.
    }
    $("pytorch-caption").textContent =
      `Trial #${number} as PyTorch optimizer + scheduler code` +
      (copied ? " (copied to the clipboard)" : " (select it to copy)");
    $("pytorch-box").hidden = false;
    $("pytorch-box").dataset.trial = String(number);
  }

  const layout = (extra) => ({
    margin: { l: 64, r: 16, t: 12, b: 44 },
    uirevision: "keep", // keep the user's zoom and legend clicks across live updates
    legend: { font: { size: 11 }, groupclick: "toggleitem" },
    hovermode: "closest",
    ...extra,
  });

  function curveTrace(c, y, x, extra) {
    const pruned = c.group === "pruned";
    return {
      type: "scatter", mode: "lines", x, y,
      name: pruned ? `#${c.number} pruned` : `#${c.number}`,
      legendgroup: c.schedule, legendgrouptitle: { text: c.schedule },
      line: { color: colour(c.schedule), width: pruned ? 1 : 2, dash: pruned ? "dash" : "solid" },
      opacity: pruned ? 0.45 : 1,
      hovertemplate: `${c.schedule} #${c.number}${pruned ? " (pruned)" : ""}<br>epoch %{x}: %{y:.4g}<extra></extra>`,
      ...extra,
    };
  }

  async function drawStudyCharts(name, study, results) {
    const Plotly = await plotlyReady;
    const items = results.curves.items;
    const top = items.filter((c) => c.group !== "pruned");
    const epochAxis = { title: { text: "epoch" }, dtick: study.max_epochs <= 20 ? 1 : undefined };
    const draws = [
      Plotly.react($("chart-lr"),
        top.map((c) => curveTrace(c, c.lr_curve, c.lr_curve.map((_, i) => i))),
        layout({ xaxis: epochAxis, yaxis: { title: { text: "learning rate" }, type: "log", exponentformat: "e" } }),
        PLOT_CONFIG),
      Plotly.react($("chart-learning"),
        items.map((c) => curveTrace(c, c.values, c.epochs)),
        layout({ xaxis: epochAxis, yaxis: { title: { text: study.metric } } }),
        PLOT_CONFIG),
      drawScatter(Plotly, name, study, results.scatter),
      drawLrRange(Plotly, study.lr_range),
    ];
    await Promise.all(draws);
  }

  // A message in place of a chart (removing the chart if there was one).
  function placeholder(div, text) {
    if (window.Plotly) window.Plotly.purge(div);
    div.replaceChildren(el("p", { className: "message" }, text));
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
    return Plotly.react(div, traces, layout({
      xaxis: { title: { text: "learning rate" }, type: "log", exponentformat: "e" },
      yaxis: { title: { text: `final ${study.metric}` } },
    }), PLOT_CONFIG).then(() => {
      if (!div.dataset.clickable) { // a point opens its trial; bind once per div
        div.dataset.clickable = "1";
        div.on("plotly_click", (e) => {
          const number = e.points[0] && e.points[0].customdata;
          if (number !== undefined) location.hash = trialHash(div.dataset.study, number);
        });
      }
    });
  }

  // --------------------------------------------------------------------- task

  // What the tenant has learnt about a task: GET /schedules/best, one table per direction
  // (values of studies that maximize and of those that minimize are never compared).
  async function showTask(token, task) {
    setCrumbs([[`task ${task}`, null]]);
    $("task-name").textContent = `Best schedules for task ${task}`;
    const [body] = await Promise.all([api(`/schedules/best?task=${enc(task)}&top=${TASK_TOP}`), whoami()]);
    if (token !== view) return;
    renderTask(body);
    show("task-view");
    markRendered("task");
  }

  function renderTask(body) {
    $("task-empty").hidden = body.items.length > 0;
    $("task-empty").textContent = `No completed trial in any of your studies of task ${body.task} yet.`;
    const directions = [...new Set(body.items.map((g) => g.direction))];
    $("task-best").replaceChildren(...directions.map((direction) => {
      const groups = body.items.filter((g) => g.direction === direction);
      const rows = groups.flatMap((g) => g.trials.map((t, rank) => el("tr", {
        "data-direction": direction, "data-schedule": g.schedule, "data-rank": rank,
        "data-study": t.study, "data-number": t.number,
      },
      el("td", { "data-field": "schedule" }, rank ? "" : el("span", {},
        el("span", { className: "swatch", style: `background:${colour(g.schedule)}` }), g.schedule)),
      el("td", { className: "num", "data-field": "rank" }, rank + 1),
      el("td", { "data-field": "study" }, el("a", { href: studyHash(t.study) }, t.study)),
      el("td", { className: "num", "data-field": "number" }, el("a", { href: trialHash(t.study, t.number) }, `#${t.number}`)),
      el("td", { className: "num", "data-field": "value", "data-raw": JSON.stringify(t.value) }, num(t.value)),
      el("td", { "data-field": "metric" }, t.metric),
      el("td", { className: "num", "data-field": "epochs_trained" }, `${t.epochs_trained}/${t.max_epochs}`),
      el("td", { className: "num", "data-field": "learning_rate" }, lr(t.learning_rate)),
      el("td", { className: "num", "data-field": "batch_size" }, plain(t.batch_size)),
      el("td", { className: "settings", "data-field": "settings" }, settingsContent(t.settings)),
      )));
      return el("section", { "data-direction": direction },
        el("h2", {}, `Studies that ${direction} their metric`),
        el("table", { className: "grid task-best" },
          el("thead", {}, el("tr", {}, ...["Schedule", "Rank", "Study", "Trial", "Value", "Metric",
            "Epochs", "Learning rate", "Batch", "PyTorch scheduler"].map((h) => el("th", {}, h)))),
          el("tbody", {}, ...rows)));
    }));
  }

  // -------------------------------------------------------------------- trial

  async function showTrial(token, name, number) {
    setCrumbs([[name, studyHash(name)], [`trial #${number}`, null]]);
    const load = () => Promise.all([api(`/studies/${enc(name)}/trials/${number}`), api(`/studies/${enc(name)}`)]);
    const [[trial, study]] = await Promise.all([load(), whoami()]);
    if (token !== view) return;
    show("trial-view");
    await renderTrial(trial, study);
    if (token !== view) return;
    markRendered("trial");
    const active = (t) => t.state === "RUNNING" || t.state === "WAITING";
    const refresh = async () => {
      const [t, s] = await load();
      if (token !== view) return;
      await renderTrial(t, s);
      if (active(t)) pollLater(token, refresh);
    };
    if (active(trial)) pollLater(token, refresh);
  }

  async function renderTrial(t, study) {
    $("trial-title").textContent = `Trial #${t.number} · ${t.schedule || "?"} · ${study.metric} ${num(t.value)}`;
    badge($("trial-state"), t.state);
    $("trial-live").textContent = t.state === "RUNNING" ? `live · updated ${new Date().toLocaleTimeString()}` : "";
    $("trial-error").textContent = t.error ? `Error: ${t.error}` : "";
    $("trial-error").hidden = !t.error;
    const rows = (pairs) => pairs.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { className: "num" }, v)));
    $("trial-params").tBodies[0].replaceChildren(...rows(Object.keys(t.params).sort()
      .map((k) => [k, typeof t.params[k] === "number" ? String(Number(t.params[k].toPrecision(6))) : plain(t.params[k])])));
    $("trial-facts").tBodies[0].replaceChildren(...rows([
      ["value", num(t.value)], ["epochs run", t.epochs_run],
      ["duration", Number.isFinite(t.duration_s) ? `${t.duration_s.toFixed(1)} s` : "—"],
      ["worker", plain(t.worker)], ["device", plain(t.device)],
      ["started", plain(t.datetime_start)], ["completed", plain(t.datetime_complete)],
      ["retry of", t.retry_of === null ? "—" : `#${t.retry_of}`],
    ]));
    // Metrics: one row per epoch, one column per key any epoch reported.
    const keys = [...new Set(t.metrics.flatMap((m) => Object.keys(m)))];
    const cellText = (v) => (typeof v === "number" ? String(Number(v.toPrecision(5))) : plain(v));
    $("trial-metrics").tHead.replaceChildren(el("tr", {}, ...keys.map((k) => el("th", {}, k))));
    $("trial-metrics").tBodies[0].replaceChildren(...t.metrics.map((m) =>
      el("tr", {}, ...keys.map((k) => el("td", { className: "num" }, cellText(m[k]))))));

    const Plotly = await plotlyReady;
    const epochs = Object.keys(t.intermediate_values).map(Number).sort((a, b) => a - b);
    const c = { number: t.number, schedule: t.schedule || "?", group: t.state === "PRUNED" ? "pruned" : "top" };
    const epochAxis = { title: { text: "epoch" }, dtick: study.max_epochs <= 20 ? 1 : undefined };
    await Promise.all([
      Plotly.react($("trial-chart-lr"), [curveTrace(c, t.lr_curve, t.lr_curve.map((_, i) => i))],
        layout({ showlegend: false, xaxis: epochAxis, yaxis: { title: { text: "learning rate" }, type: "log", exponentformat: "e" } }),
        PLOT_CONFIG),
      Plotly.react($("trial-chart-learning"),
        [curveTrace(c, epochs.map((e) => t.intermediate_values[e]), epochs)],
        layout({ showlegend: false, xaxis: epochAxis, yaxis: { title: { text: study.metric } } }),
        PLOT_CONFIG),
    ]);
  }

  // ---------------------------------------------------------------- key form

  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const candidate = $("key-input").value.trim();
    try {
      // Checked before it is kept: a wrong key shows an error and no data.
      me = await api("/whoami", { key: candidate });
    } catch (e) {
      me = null;
      const why = e instanceof ApiError && e.status === 401
        ? `This key was refused: ${e.message}.` : `Could not check the key: ${e.message}`;
      askForKey(why);
      return;
    }
    apiKey = candidate;
    localStorage.setItem(KEY_STORAGE, candidate);
    $("key-input").value = "";
    showWhoami();
    route();
  });

  $("forget-key").addEventListener("click", () => askForKey(""));
  window.addEventListener("hashchange", route);

  // Without a stored key, ask only if the service checks keys (`lrsearch demo --serve`
  // on a loopback address does not): /whoami answers a request without one then.
  (apiKey ? Promise.resolve() : api("/whoami", { key: null }).then((who) => {
    me = who;
    keysChecked = false;
    showWhoami();
  }).catch(() => {})).finally(route);
})();
