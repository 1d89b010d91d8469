// lrsearch dashboard: plain JavaScript, no build step, served by `lrsearch serve`.
// It reads only the REST API (/api/v1) with the user's API key, and asks for
// aggregates and a bounded number of curves, never for every trial of a study.
//
// Routes (after #): #/ studies, #/study/NAME, #/study/NAME/trials (all trials),
// #/study/NAME/analysis, #/study/NAME/trial/N, #/task/NAME (best schedules across the
// task's studies).
// This file is the core (API access, routing, the studies list and the study page); it
// publishes its helpers as window.LR for charts.js, views_trials.js and views_analysis.js,
// which index.html loads after it, and starts once all of them are in (DOMContentLoaded).
// Two marks per view, for tests and the render benchmark (bench/dashboard_render.py):
// document.body.dataset.content and window.__lrsearchContent (performance.now()) once its
// text and tables are drawn, document.body.dataset.rendered and window.__lrsearchRendered
// once everything, charts included, is drawn (the same moment on views without charts).
"use strict";

(() => {
  const API = "/api/v1";
  const KEY_STORAGE = "lrsearch.apiKey";
  const POLL_MS = 3000;
  const CURVES_PER_SCHEDULE = 3;
  const PRUNED_CURVES = 10;
  const SCATTER_POINTS = 2000;
  const IMPORTANCE_EVERY_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

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

  async function api(path, { method = "GET", key = apiKey, body } = {}) {
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(API + path, {
      method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      // Errors are RFC 9457 problems: `detail` says what went wrong.
      throw new ApiError(response.status, (answer && answer.detail) || response.statusText);
    }
    return answer;
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

  const VIEWS = ["key-view", "studies-view", "study-view", "trial-view", "task-view",
    "trials-view", "analysis-view"];
  const CHARTS = ["chart-lr", "chart-learning", "chart-importance", "chart-scatter",
    "chart-lr-range", "trial-chart-lr", "trial-chart-learning", "chart-running",
    "chart-history", "chart-history-epochs", "chart-parallel"];
  let view = 0; // bumped on every navigation: stale responses and polls check it and stop
  let pollTimer = null;

  function show(id) {
    for (const v of VIEWS) $(v).hidden = v !== id;
  }

  // The view's text and tables are on screen (its charts may still be drawing).
  function markContent(name) {
    window.__lrsearchContent = performance.now();
    document.body.dataset.content = name;
  }

  // Everything is on screen, charts included.
  function markRendered(name) {
    if (document.body.dataset.content !== name) markContent(name);
    window.__lrsearchRendered = performance.now();
    document.body.dataset.rendered = name;
    LR.charts.plotlyWhenIdle(); // for the next page's charts
  }

  // Removes every piece of data from the page (wrong or forgotten key).
  function clearData() {
    for (const id of ["studies-table", "leaderboard", "trial-params", "trial-facts", "trial-metrics",
      "all-trials", "running-table"]) {
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
    $("study-note").replaceChildren();
    $("slice-charts").replaceChildren();
    $("running-box").hidden = true;
    $("study-failures").hidden = true;
  }

  function askForKey(message) {
    view++;
    clearTimeout(pollTimer);
    apiKey = null;
    me = null;
    localStorage.removeItem(KEY_STORAGE);
    clearData();
    delete document.body.dataset.content;
    delete document.body.dataset.rendered;
    $("error").hidden = true;
    $("forget-key").hidden = true;
    $("key-error").textContent = message || "";
    $("key-error").hidden = !message;
    setCrumbs([]);
    show("key-view");
    $("key-input").focus();
    LR.charts.plotlyWhenIdle(); // while the key is typed
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
    delete document.body.dataset.content;
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
    if (kind === "study" && name && sub !== "trials") LR.charts.prefetchPlotly(); // a view with charts
    let run;
    if (kind === "study" && name && sub === "trial" && /^\d+$/.test(number || "")) {
      run = LR.views.trial(token, name, Number(number));
    } else if (kind === "study" && name && sub === "trials") {
      run = LR.views.trials(token, name);
    } else if (kind === "study" && name && sub === "analysis") {
      run = LR.views.analysis(token, name);
    } else if (kind === "study" && name) {
      run = showStudy(token, name);
    } else if (kind === "task" && name) {
      run = LR.views.task(token, name);
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
      el("td", { className: s.counts.FAIL ? "num failed-count" : "num", "data-field": "failed" }, s.counts.FAIL),
      el("td", { className: "num" }, num(s.best_value)),
      el("td", { title: s.created_at }, age(s.created_at)),
    )));
    $("studies-empty").hidden = studies.length > 0;
    $("studies-more").hidden = !cursor;
  }

  // -------------------------------------------------------------------- study

  // The study page's results: the leaderboard (GET schedules) and the charts' two requests.
  const askSchedules = (name) => api(`/studies/${enc(name)}/schedules`);

  function askCharts(name) {
    return Promise.all([
      api(`/studies/${enc(name)}/curves?per_schedule=${CURVES_PER_SCHEDULE}&pruned=${PRUNED_CURVES}`),
      api(`/studies/${enc(name)}/scatter?limit=${SCATTER_POINTS}`),
    ]).then(([curves, scatter]) => ({ curves, scatter }));
  }

  async function loadResults(name) {
    const [schedules, charts] = await Promise.all([askSchedules(name), askCharts(name)]);
    return { schedules, ...charts };
  }

  // Results change only when trials finish; counts of running ones do not matter.
  const resultsKey = (s) => [s.counts.COMPLETE, s.counts.PRUNED, s.counts.FAIL].join("/");
  // Parameter importance is the one costly endpoint (the service fits a model over the
  // trials), so it never holds up the other charts, only one request is in flight, and
  // while trials keep finishing it is asked again at most every IMPORTANCE_EVERY_MS.
  // Its chart waits for `drawable` (the page's text and tables drawn first).
  function importanceFeed(token, name, drawable) {
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
          await drawable;
          if (token === view) await LR.charts.drawImportance(await LR.plotly(), importance);
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

  // Every request at once (they are independent). The header, the leaderboard and the
  // tables beside it are drawn as soon as their answers are in (markContent); plotly.js is
  // loaded only then, for the charts (markRendered once all of them, importance included,
  // are drawn). window.__lrsearchTimings keeps the steps (performance.now()).
  async function showStudy(token, name) {
    setCrumbs([[name, null]]);
    $("pytorch-box").hidden = true; // another study's code must not linger
    $("study-name").textContent = name;
    const timings = {};
    window.__lrsearchTimings = timings;
    LR.charts.placeholder($("chart-importance"), "Computing parameter importance…");
    $("study-trials-link").href = `${studyHash(name)}/trials`;
    $("study-analysis-link").href = `${studyHash(name)}/analysis`;
    let contentDrawn;
    const drawable = new Promise((resolve) => { contentDrawn = resolve; });
    // What the text and tables need first: the browser runs 6 requests at a time.
    const studyAsked = api(`/studies/${enc(name)}`);
    const schedulesAsked = askSchedules(name);
    const whoAsked = whoami();
    LR.study.prefetch(name);
    const chartsAsked = askCharts(name);
    chartsAsked.catch(() => {}); // if the text's requests fail first, their error is shown
    const importance = importanceFeed(token, name, drawable);
    const importanceDrawn = importance("first", true);
    importanceDrawn.catch(() => {}); // if the rest fails first, its error is the one shown
    Promise.all([studyAsked, schedulesAsked, chartsAsked])
      .then(() => { timings.data = performance.now(); }, () => {});
    const [study, schedules] = await Promise.all([studyAsked, schedulesAsked, whoAsked]);
    if (token !== view) return;
    show("study-view");
    renderStudyHeader(study);
    renderLeaderboard(name, schedules);
    // Running trials, pace, failures and the note (views_analysis.js), beside the leaderboard.
    const extras = await LR.study.update(token, name, study, true);
    if (token !== view) return;
    markContent("study");
    contentDrawn();
    const results = { schedules, ...(await chartsAsked) };
    if (token !== view) return;
    timings.plotlyAsked = performance.now();
    await LR.plotly();
    timings.plotly = performance.now();
    await LR.charts.drawStudyCharts(name, study, results);
    timings.withoutImportance = performance.now();
    await Promise.all([importanceDrawn, extras.drawCharts()]);
    if (token !== view) return;
    markRendered("study");
    let seen = resultsKey(study);
    let updates = 0;

    const refresh = async () => {
      const now = await api(`/studies/${enc(name)}`);
      if (token !== view) return;
      renderStudyHeader(now);
      const more = await LR.study.update(token, name, now, false);
      if (token !== view) return;
      await more.drawCharts();
      if (token !== view) return;
      if (resultsKey(now) !== seen) {
        const fresh = await loadResults(name);
        if (token !== view) return;
        seen = resultsKey(now);
        renderLeaderboard(name, fresh.schedules);
        await LR.charts.drawStudyCharts(name, now, fresh);
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
          el("span", { className: "swatch", style: `background:${LR.charts.colour(s.schedule)}` }), s.schedule),
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

  // What the other scripts use; `current()` is the navigation token, `me()` the key's scope;
  // charts.js adds `charts` and `plotly()`.
  const LR = {
    $, el, api, ApiError, enc, num, lr, fixed, plain, age, studyHash, trialHash, taskHash,
    setCrumbs, badge, show, markContent, markRendered, pollLater, fail, whoami, isLive,
    settingsContent, showError, current: () => view, me: () => me, POLL_MS,
    views: {}, study: null, charts: null,
  };
  window.LR = LR;

  // Without a stored key, ask only if the service checks keys (`lrsearch demo --serve`
  // on a loopback address does not): /whoami answers a request without one then.
  // The other scripts (deferred after this one) are all in by DOMContentLoaded.
  document.addEventListener("DOMContentLoaded", () => {
    (apiKey ? Promise.resolve() : api("/whoami", { key: null }).then((who) => {
      me = who;
      keysChecked = false;
      showWhoami();
    }).catch(() => {})).finally(route);
  });
})();
