// A live uPlot chart of one numeric column of a push query, one series per key.
//
// Rows arrive far faster than a screen redraws (thousands a second), so `push` only queues
// them; once per animation frame the queue is folded into time buckets (the mean of each
// key's values in each BUCKET_S slice of arrival time) and the chart redrawn. Buckets older
// than the window fall off the front, so the data the chart holds stays bounded.

import { frameScheduler, h, replace } from "./util.js";

const BUCKET_S = 0.1;
const MAX_SERIES = 12;
const PALETTE = [
  "#2f6fed", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599",
  "#d9480f", "#5c940d", "#a61e4d", "#1971c2", "#862e9c", "#e67700",
];
const NUMERIC = /^(INT|INTEGER|BIGINT|DOUBLE|DECIMAL|REAL|FLOAT|SMALLINT|TINYINT)/i;
// numbers that are times or positions, not measures: a windowed table's bounds and the
// pseudo columns. Charted, they would draw a line of timestamps instead of the measure.
const NOT_MEASURES = new Set(["WINDOWSTART", "WINDOWEND", "ROWTIME", "ROWOFFSET", "ROWPARTITION"]);

export class LiveChart {
  constructor(container, keySelect, valueSelect, windowSelect, info) {
    this.container = container;
    this.keySelect = keySelect;
    this.valueSelect = valueSelect;
    this.windowSelect = windowSelect;
    this.info = info;
    this.windowS = Number(windowSelect.value);
    this.columns = [];
    this.types = [];
    this.plot = null;
    this.pointsReceived = 0;
    this.schedule = frameScheduler(() => this.flush());
    this.reset();
    keySelect.addEventListener("change", () => this.rebuild());
    valueSelect.addEventListener("change", () => this.rebuild());
    windowSelect.addEventListener("change", () => {
      this.windowS = Number(windowSelect.value);
      this.schedule();
    });
    new ResizeObserver(() => this.resize()).observe(container);
    // keep the time axis moving while no rows arrive
    setInterval(() => this.plot && this.schedule(), 500);
  }

  reset() {
    this.pending = [];
    this.times = [];
    this.keys = []; // series order
    this.sums = new Map(); // key -> array aligned with times
    this.counts = new Map();
    this.dropped = new Set();
  }

  // A new push query: its columns decide what can be charted.
  configure(columns, types) {
    this.columns = columns;
    this.types = types;
    const numeric = columns.filter((c, i) => NUMERIC.test(types[i] || "") && !NOT_MEASURES.has(c.toUpperCase()));
    const keyDefault = columns.findIndex((_, i) => !NUMERIC.test(types[i] || ""));
    replace(
      this.keySelect,
      h("option", { value: "-1" }, "(none)"),
      ...columns.map((c, i) => h("option", { value: String(i), selected: i === keyDefault }, c)),
    );
    replace(this.valueSelect, ...numeric.map((c) => h("option", { value: String(columns.indexOf(c)) }, c)));
    if (!numeric.length) {
      this.destroy();
      replace(this.container, h("p", { class: "placeholder" }, "This query has no numeric column to chart."));
      this.info.textContent = "";
      return;
    }
    this.rebuild();
  }

  rebuild() {
    this.reset();
    this.keyIndex = Number(this.keySelect.value);
    this.valueIndex = Number(this.valueSelect.value);
    this.destroy();
    replace(this.container);
    const width = Math.max(320, this.container.clientWidth);
    this.plot = new uPlot(
      {
        width,
        height: 300,
        series: [{}],
        scales: { x: { time: true } },
        axes: [{ stroke: "#6b7486", grid: { stroke: "#eef1f5" } }, { stroke: "#6b7486", grid: { stroke: "#eef1f5" }, size: 60 }],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      },
      [[]],
      this.container,
    );
    this.schedule();
  }

  destroy() {
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: Math.max(320, this.container.clientWidth), height: 300 });
  }

  // Queue rows (arrays of column values) for the next frame.
  push(rows) {
    if (!this.plot) return;
    const now = Date.now() / 1000;
    for (const row of rows) this.pending.push(now, row);
    this.schedule();
  }

  seriesFor(key) {
    if (this.sums.has(key)) return true;
    if (this.keys.length >= MAX_SERIES) {
      this.dropped.add(key);
      return false;
    }
    this.keys.push(key);
    this.sums.set(key, new Array(this.times.length).fill(0));
    this.counts.set(key, new Array(this.times.length).fill(0));
    this.added.push(key);
    return true;
  }

  flush() {
    if (!this.plot) return;
    const pending = this.pending;
    this.pending = [];
    this.added = [];
    for (let i = 0; i < pending.length; i += 2) {
      const at = pending[i];
      const row = pending[i + 1];
      const value = Number(row[this.valueIndex]);
      if (row[this.valueIndex] === null || !Number.isFinite(value)) continue;
      const key = this.keyIndex >= 0 ? String(row[this.keyIndex]) : this.columns[this.valueIndex];
      if (!this.seriesFor(key)) continue;
      const bucket = Math.floor(at / BUCKET_S) * BUCKET_S;
      if (!this.times.length || bucket > this.times[this.times.length - 1]) {
        this.times.push(bucket);
        for (const k of this.keys) {
          this.sums.get(k).push(0);
          this.counts.get(k).push(0);
        }
      }
      const last = this.times.length - 1;
      this.sums.get(key)[last] += value;
      this.counts.get(key)[last] += 1;
      this.pointsReceived += 1;
    }
    const now = Date.now() / 1000;
    let drop = 0;
    while (drop < this.times.length && this.times[drop] < now - this.windowS) drop++;
    if (drop) {
      this.times.splice(0, drop);
      for (const k of this.keys) {
        this.sums.get(k).splice(0, drop);
        this.counts.get(k).splice(0, drop);
      }
    }
    const data = [this.times.slice()];
    for (const k of this.keys) {
      const sums = this.sums.get(k);
      const counts = this.counts.get(k);
      data.push(sums.map((s, i) => (counts[i] ? s / counts[i] : null)));
    }
    // new series and their data in one commit: uPlot must never draw one without the other
    this.plot.batch(() => {
      for (const key of this.added) {
        const color = PALETTE[this.keys.indexOf(key) % PALETTE.length];
        this.plot.addSeries({ label: key, stroke: color, width: 1.5, spanGaps: true, points: { show: false } });
      }
      this.plot.setData(data);
      this.plot.setScale("x", { min: now - this.windowS, max: now });
    });
    const extra = this.dropped.size ? ` · ${this.dropped.size} more keys not drawn` : "";
    this.info.textContent = `${this.pointsReceived.toLocaleString()} points · ${this.keys.length} series${extra}`;
  }

  // How many time buckets the chart holds now (for tests and the curious).
  dataLength() {
    return this.plot ? this.plot.data[0].length : 0;
  }
}
