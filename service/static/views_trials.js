// lrsearch dashboard: the trial tables. All trials of a study (#/study/NAME/trials),
// one trial (#/study/NAME/trial/N) and the best schedules of a task (#/task/NAME).
"use strict";

(() => {
  const LR = window.LR;
  const {
    $, el, api, enc, num, lr, fixed, plain, studyHash, trialHash, setCrumbs, badge, show,
    markContent, markRendered, pollLater, whoami, plotly, settingsContent,
  } = LR;
  const TASK_TOP = 3; // trials per schedule type on the task page
  const PAGE = 50; // rows of the all-trials table
  const ERROR_CHARS = 80; // a failed trial's error, cut to this in the table (whole on hover)

  // ---------------------------------------------------------------- all trials

  // Keyset pages of GET /studies/{name}/trials: `cursors[i]` opens page i, so "previous"
  // walks back the cursors already seen and "next" uses the page's next_cursor.
  async function showTrials(token, name) {
    setCrumbs([[name, studyHash(name)], ["all trials", null]]);
    $("trials-title").textContent = `All trials of ${name}`;
    $("trials-study-link").href = studyHash(name);
    const state = { sort: "number", order: "asc", states: "", schedule: "", cursors: [null] };
    const load = async () => {
      const q = new URLSearchParams({ sort: state.sort, limit: String(PAGE) });
      if (state.order) q.set("order", state.order);
      if (state.states) q.append("state", state.states);
      if (state.schedule) q.append("schedule", state.schedule);
      const cursor = state.cursors[state.cursors.length - 1];
      if (cursor) q.set("cursor", cursor);
      return api(`/studies/${enc(name)}/trials?${q}`);
    };
    // Only the latest request draws: a quick second click must not be overwritten
    // by the first one's answer arriving late.
    let latest = 0;
    const draw = async () => {
      const mine = ++latest;
      const [page, study] = await Promise.all([load(), api(`/studies/${enc(name)}`), whoami()]);
      if (token !== LR.current() || mine !== latest) return;
      renderTrialTable(name, study, page, state);
      show("trials-view");
      markRendered("trials");
    };
    const restart = () => {
      state.cursors = [null];
      draw().catch((e) => LR.fail(token, e));
    };
    $("trials-filter-state").value = "";
    $("trials-filter-schedule").value = "";
    $("trials-filter-state").onchange = (e) => { state.states = e.target.value; restart(); };
    $("trials-filter-schedule").onchange = (e) => { state.schedule = e.target.value; restart(); };
    $("all-trials").tHead.onclick = (e) => {
      const sort = e.target.closest("[data-sort]")?.dataset.sort;
      if (!sort) return;
      // A second click on the same column reverses it; a new column starts in its default order.
      if (sort === state.sort) state.order = state.order === "asc" ? "desc" : "asc";
      else [state.sort, state.order] = [sort, sort === "value" ? null : "asc"];
      restart();
    };
    $("trials-next").onclick = () => {
      state.cursors.push($("trials-next").dataset.cursor);
      draw().catch((e) => LR.fail(token, e));
    };
    $("trials-prev").onclick = () => {
      state.cursors.pop();
      draw().catch((e) => LR.fail(token, e));
    };
    await draw();
  }

  function renderTrialTable(name, study, page, state) {
    if (state.order === null) state.order = study.direction === "maximize" ? "desc" : "asc";
    for (const th of $("all-trials").tHead.querySelectorAll("[data-sort]")) {
      const on = th.dataset.sort === state.sort;
      th.dataset.active = on ? state.order : "";
      th.setAttribute("aria-sort", on ? (state.order === "asc" ? "ascending" : "descending") : "none");
    }
    const short = (text) => (text.length > ERROR_CHARS ? `${text.slice(0, ERROR_CHARS - 1)}…` : text);
    $("all-trials").tBodies[0].replaceChildren(...page.items.map((t) => el("tr", {
      "data-number": t.number, "data-state": t.state },
    el("td", { className: "num", "data-field": "number" }, el("a", { href: trialHash(name, t.number) }, `#${t.number}`)),
    el("td", { "data-field": "state" }, el("span", { className: `badge ${t.state.toLowerCase()}` }, t.state)),
    el("td", { className: "num", "data-field": "value", "data-raw": JSON.stringify(t.value) }, num(t.value)),
    el("td", { "data-field": "schedule" }, t.schedule ? el("span", {},
      el("span", { className: "swatch", style: `background:${LR.charts.colour(t.schedule)}` }), t.schedule) : "—"),
    el("td", { className: "num", "data-field": "learning_rate" }, lr(t.learning_rate)),
    el("td", { className: "num", "data-field": "batch_size" }, plain(t.batch_size)),
    el("td", { className: "num", "data-field": "dropout" }, fixed(t.dropout)),
    el("td", { "data-field": "weight_init" }, plain(t.weight_init)),
    el("td", { className: "num", "data-field": "epochs_run" }, `${t.epochs_run}/${study.max_epochs}`),
    el("td", { className: "num", "data-field": "duration" }, Number.isFinite(t.duration_s) ? `${t.duration_s.toFixed(1)} s` : "—"),
    el("td", { "data-field": "worker" }, plain(t.worker)),
    el("td", { className: "error-cell", "data-field": "error", title: t.error || "" }, t.error ? short(t.error) : ""),
    )));
    const at = state.cursors.length;
    $("trials-empty").hidden = page.items.length > 0;
    $("trials-page").textContent = `page ${at} · ${page.items.length} trials · ${study.finished}/${study.n_trials} finished, ` +
      `${study.counts.RUNNING} running, ${study.counts.WAITING} waiting`;
    $("trials-prev").disabled = at <= 1;
    $("trials-next").disabled = !page.next_cursor;
    $("trials-next").dataset.cursor = page.next_cursor || "";
  }

  // --------------------------------------------------------------------- task

  // What the tenant has learnt about a task: GET /schedules/best, one table per direction
  // (values of studies that maximize and of those that minimize are never compared).
  async function showTask(token, task) {
    setCrumbs([[`task ${task}`, null]]);
    $("task-name").textContent = `Best schedules for task ${task}`;
    const [body] = await Promise.all([api(`/schedules/best?task=${enc(task)}&top=${TASK_TOP}`), whoami()]);
    if (token !== LR.current()) return;
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
        el("span", { className: "swatch", style: `background:${LR.charts.colour(g.schedule)}` }), g.schedule)),
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
    if (token !== LR.current()) return;
    show("trial-view");
    const charts = renderTrial(trial, study); // its tables are drawn when it returns
    markContent("trial");
    await charts;
    if (token !== LR.current()) return;
    markRendered("trial");
    const active = (t) => t.state === "RUNNING" || t.state === "WAITING";
    const refresh = async () => {
      const [t, s] = await load();
      if (token !== LR.current()) return;
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

    const epochs = Object.keys(t.intermediate_values).map(Number).sort((a, b) => a - b);
    const c = { number: t.number, schedule: t.schedule || "?", group: t.state === "PRUNED" ? "pruned" : "top" };
    const epochAxis = { title: { text: "epoch" }, dtick: study.max_epochs <= 20 ? 1 : undefined };
    const { react, curveTrace, layout, logAxis } = LR.charts;
    await plotly();
    await Promise.all([
      react($("trial-chart-lr"), [curveTrace(c, t.lr_curve, t.lr_curve.map((_, i) => i))],
        layout({ showlegend: false, xaxis: epochAxis, yaxis: logAxis("learning rate") })),
      react($("trial-chart-learning"),
        [curveTrace(c, epochs.map((e) => t.intermediate_values[e]), epochs)],
        layout({ showlegend: false, xaxis: epochAxis, yaxis: { title: { text: study.metric } } })),
    ]);
  }

  LR.views.trials = showTrials;
  LR.views.trial = showTrial;
  LR.views.task = showTask;
})();
