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

  // Draws `series` over the rounds `x` in the container `id`, or says what to do next
  // when there is nothing to draw yet.
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
      showEmpty(box, x.length === 0 ? "No rounds yet: ask for a batch with POST /rounds." : empty);
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
    const axis = (label) => ({
      label: label,
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
    });
    // Rounds are whole numbers: no ticks between them.
    const rounds = Object.assign(axis(spec.x), { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] });
    const chart = new uPlot(
      {
        title: spec.title,
        width: Math.max(260, box.clientWidth - 4),
        height: 240,
        scales: { x: { time: false }, y: spec.yRange ? { range: spec.yRange } : {} },
        axes: [rounds, axis(spec.y)],
        series: [{ label: spec.x }].concat(
          series.map((s, i) => ({
            label: s.label,
            stroke: palette[i % palette.length],
            width: 2,
            spanGaps: true,
            points: { show: true, size: 5 },
          }))
        ),
      },
      data,
      box
    );
    chart.flowlabKey = key;
    charts[id] = chart;
  }

  function percent(values) {
    return values.map((v) => (v === null ? null : 100 * v));
  }

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
      { title: "Best so far and top-10 mean", x: "round", y: "reward (oracle units)" },
      x,
      [
        { label: "best so far", values: s.best_so_far },
        { label: "top-10 mean", values: s.top_mean },
      ],
      "No rewards yet: post labels to see them."
    );
    render(
      "chart-failed",
      { title: "Failed share of each round's measurements", x: "round", y: "failed (%)", yRange: [0, 100] },
      x,
      [{ label: "failed", values: percent(s.failed_fraction) }],
      "Nothing measured yet: post labels (failures too) to see this."
    );
    render(
      "chart-diversity",
      { title: "Diversity of the top 10 (mean pairwise distance)", x: "round", y: "distance (space units)" },
      x,
      [{ label: "top-10 diversity", values: s.top_diversity }],
      "Needs two labelled candidates: post labels to see it."
    );
    render(
      "chart-prospective",
      { title: "Proxy predictions vs. measurements", x: "round", y: "ρ, share (unitless)" },
      x,
      [
        { label: "Spearman ρ", values: s.spearman },
        { label: "1σ coverage", values: s.coverage_1sigma },
      ],
      "No figures yet: they need labelled candidates of rounds proposed with a trained proxy."
    );
    render(
      "chart-sources",
      { title: "Where candidates came from", x: "round", y: "candidates" },
      x,
      Object.entries(s.sources).map(([name, values]) => ({ label: name, values: values })),
      "No candidates yet: ask for a batch with POST /rounds."
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
      if (box) chart.setSize({ width: Math.max(260, box.clientWidth - 4), height: 240 });
    }
  });
  refresh();
})();
