// The campaign dashboard's live part: fetches the page's figures every few seconds and
// redraws the charts (uPlot) and the server-rendered tables, without reloading the page.
"use strict";
(function () {
  const root = document.getElementById("dashboard");
  if (!root) return;
  const source = root.dataset.source;
  const interval = Number(root.dataset.intervalMs) || 5000;
  // Charts by container id; tests and curious users can read their data here.
  const charts = {};
  window.flowlabCharts = charts;
  const palette = ["#1f6feb", "#d4a72c", "#2da44e", "#cf222e", "#8250df", "#bf3989", "#768390"];

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function anyValue(arrays) {
    return arrays.some((a) => a.some((v) => v !== null && v !== undefined));
  }

  function showEmpty(box, message) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = message;
    box.replaceChildren(p);
  }

  // Draws `series` over `x` in the container `id`, or says what to do next when there is
  // nothing to draw yet: `spec.none` without any x, `empty` when every value is missing.
  // `spec.whole` keeps the x ticks on whole numbers (rounds, runs); a series with
  // `scatter` is drawn as points only, one with `guide` as a dashed line without points.
  function render(id, spec, x, series, empty) {
    const box = document.getElementById(id);
    if (!box) return;
    box.dataset.points = String(x.length);
    const ys = series.map((s) => s.values);
    if (x.length === 0 || !anyValue(ys)) {
      if (charts[id]) {
        charts[id].destroy();
        delete charts[id];
      }
      showEmpty(box, x.length === 0 ? spec.none : empty);
      return;
    }
    const data = [x, ...ys];
    const key = series.map((s) => s.label).join("|");
    const existing = charts[id];
    if (existing && existing.flowlabKey === key) {
      existing.setData(data);
      return;
    }
    if (existing) existing.destroy();
    box.replaceChildren();
    const text = cssVar("--text");
    const grid = cssVar("--border");
    const muted = cssVar("--muted");
    const axis = (label) => ({
      label: label,
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
    });
    const xAxis = axis(spec.x);
    // Rounds and runs are whole numbers: no ticks between them.
    if (spec.whole) xAxis.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
    let colour = 0;
    const chart = new uPlot(
      {
        title: spec.title,
        // Values under the pointer where there is one; on a touch screen, the names only.
        legend: { live: hover },
        width: chartWidth(box),
        height: CHART_HEIGHT,
        scales: { x: { time: false }, y: spec.yRange ? { range: spec.yRange } : {} },
        axes: [xAxis, axis(spec.y)],
        series: [{ label: spec.x }].concat(
          series.map((s) => {
            if (s.guide) {
              return { label: s.label, stroke: muted, width: 1, dash: [4, 4], points: { show: false } };
            }
            const line = {
              label: s.label,
              stroke: palette[colour++ % palette.length],
              width: 2,
              spanGaps: true,
              points: { show: true, size: 5 },
            };
            if (s.scatter) {
              line.paths = () => null;
              line.points = { show: true, size: 7, fill: line.stroke };
            }
            return line;
          })
        ),
      },
      data,
      box
    );
    chart.flowlabKey = key;
    charts[id] = chart;
  }

  const CHART_HEIGHT = 240;
  const hover = window.matchMedia("(hover: hover)").matches;
  function chartWidth(box) {
    return Math.max(240, box.clientWidth - 4);
  }

  function percent(values) {
    return values.map((v) => (v === null ? null : 100 * v));
  }

  const noRounds = "No rounds yet: ask for a batch with POST /rounds.";

  function apply(data) {
    for (const [id, html] of Object.entries(data.html)) {
      const element = document.getElementById(id);
      // Server-rendered fragments (escaped by the template), replacing the same ones.
      if (element) element.innerHTML = html;
    }
    const s = data.series;
    const x = s.round;
    render(
      "chart-progress",
      { title: "Best so far and top-10 mean", x: "round", y: "reward (oracle units)", whole: true, none: noRounds },
      x,
      [
        { label: "best so far", values: s.best_so_far },
        { label: "top-10 mean", values: s.top_mean },
      ],
      "No rewards yet: post labels to see them."
    );
    render(
      "chart-failed",
      { title: "Failed share of each round's measurements", x: "round", y: "failed (%)", yRange: [0, 100], whole: true, none: noRounds },
      x,
      [{ label: "failed", values: percent(s.failed_fraction) }],
      "Nothing measured yet: post labels (failures too) to see this."
    );
    render(
      "chart-diversity",
      { title: "Diversity of the top 10 (mean pairwise distance)", x: "round", y: "distance (space units)", whole: true, none: noRounds },
      x,
      [{ label: "top-10 diversity", values: s.top_diversity }],
      "Needs two labelled candidates: post labels to see it."
    );
    render(
      "chart-prospective",
      { title: "Proxy quality per round", x: "round", y: "ρ, share (unitless)", whole: true, none: noRounds },
      x,
      [
        { label: "Spearman ρ", values: s.spearman },
        { label: "1σ coverage", values: s.coverage_1sigma },
      ],
      "No figures yet: they need labelled candidates of rounds proposed with a trained proxy."
    );
    render(
      "chart-sources",
      { title: "Where candidates came from", x: "round", y: "candidates", whole: true, none: noRounds },
      x,
      Object.entries(s.sources).map(([name, values]) => ({ label: name, values: values })),
      "No candidates yet: ask for a batch with POST /rounds."
    );
    const p = data.proxy;
    render(
      "chart-proxy",
      {
        title: "Measured vs. predicted at proposal",
        x: "predicted reward",
        y: "measured (oracle units)",
        none: "No predictions to compare yet: they need labelled candidates of rounds proposed with a trained proxy.",
      },
      p.predicted,
      [
        { label: "candidates", values: p.measured, scatter: true },
        { label: "measured = predicted", values: p.predicted, guide: true },
      ],
      ""
    );
    const r = data.runs;
    render(
      "chart-runs",
      {
        title: "Loss of each training run",
        x: "training run (id)",
        y: "loss",
        whole: true,
        none: "No training yet: post labels and the model trains in the background.",
      },
      r.id,
      [{ label: "loss", values: r.loss }],
      "No run has finished yet."
    );
  }

  const live = document.getElementById("live");
  function say(message) {
    if (live) live.textContent = message;
  }

  async function refresh() {
    try {
      const response = await fetch(source, {
        headers: { accept: "application/json" },
        cache: "no-store",
        credentials: "same-origin",
      });
      if (response.status === 401) {
        window.location.assign("/signin?next=" + window.location.pathname);
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      apply(await response.json());
      say("updated " + new Date().toLocaleTimeString());
    } catch (error) {
      say("update failed (" + error.message + "), retrying");
    }
    window.setTimeout(refresh, interval);
  }

  window.addEventListener("resize", () => {
    for (const [id, chart] of Object.entries(charts)) {
      const box = document.getElementById(id);
      if (box) chart.setSize({ width: chartWidth(box), height: CHART_HEIGHT });
    }
  });
  refresh();
})();
