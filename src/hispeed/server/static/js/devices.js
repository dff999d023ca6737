// The Sense HAT devices: one card a device seen (a topic `deviceN`), with rolling charts of
// its compass and gyroscope x/y (the last POINTS readings), a "Speed" gauge (accelerometer
// x * 100), its LED matrix, and a toast for each joystick event.
//
// One WebSocket (/ws/topics with a pattern, from latest) brings every device's readings and
// joystick events (`deviceN`), and what its LED shows: `deviceNalerts`, the shared `alerts`
// and `deviceNcommands`.

import { Gauge } from "./gauge.js";
import { LedMatrix } from "./led.js";
import { LiveSocket } from "./live.js";
import { api, count, frameScheduler, h, replace } from "./util.js";

export const POINTS = 15;
const PATTERN = "^(device[0-9]+(alerts|commands)?|alerts)$";
const DEVICE_TOPIC = /^device([0-9]+)$/;
const LED_TOPIC = /^(device[0-9]+)(alerts|commands)$/;
const TOPICS_REFRESH_MS = 5000;
const CHART_HEIGHT = 150;

// A rolling line chart of two fields of the readings.
class RollingChart {
  constructor(title, series) {
    this.title = title;
    this.series = series; // [{label, field: [object, axis], stroke}]
    this.times = [];
    this.values = series.map(() => []);
    this.container = h("div", { class: "rolling" });
    this.node = h("div", { class: "rolling-chart" }, h("div", { class: "chart-title" }, title), this.container);
    this.plot = null;
    this.schedule = frameScheduler(() => this.draw());
    new ResizeObserver(() => this.resize()).observe(this.container);
  }

  width() {
    return Math.max(200, this.container.clientWidth);
  }

  create() {
    this.plot = new uPlot(
      {
        width: this.width(),
        height: CHART_HEIGHT,
        legend: { show: true, live: false },
        cursor: { show: false },
        scales: { x: { time: true } },
        axes: [
          {
            stroke: "#6b7486",
            grid: { stroke: "#eef1f5" },
            size: 28,
            font: "11px system-ui",
            // whole seconds as wall-clock time: the points are a quarter of a second apart
            incrs: [1, 2, 5, 10, 15, 30, 60],
            values: (u, splits) => splits.map((s) => new Date(s * 1000).toLocaleTimeString([], { hour12: false })),
          },
          { stroke: "#6b7486", grid: { stroke: "#eef1f5" }, size: 46, font: "11px system-ui" },
        ],
        series: [{}, ...this.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, points: { size: 4 } }))],
      },
      [[], ...this.series.map(() => [])],
      this.container,
    );
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: CHART_HEIGHT });
  }

  push(timestamp, reading) {
    this.times.push(timestamp / 1000);
    this.series.forEach((s, i) => {
      const v = Number(reading?.[s.field[0]]?.[s.field[1]]);
      this.values[i].push(Number.isFinite(v) ? v : null);
    });
    if (this.times.length > POINTS) {
      this.times.splice(0, this.times.length - POINTS);
      for (const v of this.values) v.splice(0, v.length - POINTS);
    }
    this.schedule();
  }

  draw() {
    if (!this.plot) this.create();
    this.plot.setData([this.times.slice(), ...this.values.map((v) => v.slice())]);
  }

  // The points the chart holds now (for tests and the curious).
  dataLength() {
    return this.times.length;
  }
}

class DeviceCard {
  constructor(id) {
    this.id = id;
    this.readings = 0;
    this.events = 0;
    this.compass = new RollingChart("compass (µT)", [
      { label: "x", field: ["compass", "x"], stroke: "#2f6fed" },
      { label: "y", field: ["compass", "y"], stroke: "#e8590c" },
    ]);
    this.gyroscope = new RollingChart("gyroscope (rad/s)", [
      { label: "x", field: ["gyroscope", "x"], stroke: "#2b8a3e" },
      { label: "y", field: ["gyroscope", "y"], stroke: "#c2255c" },
    ]);
    this.gauge = new Gauge("Speed");
    this.led = new LedMatrix(id);
    this.info = h("span", { class: "muted small" }, "waiting for readings…");
    this.node = h(
      "div",
      { class: "device", "data-device": id },
      h("div", { class: "device-head" }, h("strong", {}, id), this.info),
      h(
        "div",
        { class: "device-body" },
        h("div", { class: "device-charts" }, this.compass.node, this.gyroscope.node),
        h("div", { class: "device-side" }, this.gauge.node, this.led.node),
      ),
    );
  }

  reading(record) {
    const value = record.value;
    if (value === null || typeof value !== "object") return;
    this.readings += 1;
    this.compass.push(record.timestamp, value);
    this.gyroscope.push(record.timestamp, value);
    const x = Number(value.accelerometer?.x);
    if (Number.isFinite(x)) this.gauge.set(x * 100);
    this.describe();
  }

  joystick() {
    this.events += 1;
    this.describe();
  }

  describe() {
    this.info.textContent = `${count(this.readings)} readings · ${count(this.events)} joystick events`;
  }
}

export class Toasts {
  constructor(container, { shown = 3, lifetimeMs = 3500 } = {}) {
    this.container = container;
    this.shown = shown;
    this.lifetimeMs = lifetimeMs;
    this.count = 0;
  }

  // kind: "success" or "error"
  show(kind, title, text) {
    this.count += 1;
    const toast = h("div", { class: `toast ${kind}` }, h("strong", {}, title), h("span", {}, text));
    this.container.append(toast);
    while (this.container.children.length > this.shown) this.container.firstElementChild.remove();
    setTimeout(() => toast.classList.add("leaving"), this.lifetimeMs - 400);
    setTimeout(() => toast.remove(), this.lifetimeMs);
  }
}

export class DeviceBoard {
  constructor(container, counter, toasts, setStatus) {
    this.container = container;
    this.counter = counter;
    this.toasts = toasts;
    this.setStatus = setStatus;
    this.devices = new Map();
    this.records = 0;
    replace(this.container, h("div", { class: "empty" }, "No device yet: start one with `hispeed demo device --id device1`."));
    this.socket = new LiveSocket(
      "/ws/topics",
      { pattern: PATTERN, from: "latest" },
      {
        onMessage: (record) => this.receive(record),
        onState: (open, why) => this.setStatus(open, open ? "live" : `reconnecting: ${why}`),
      },
    );
    this.refreshTopics();
    setInterval(() => this.refreshTopics(), TOPICS_REFRESH_MS);
  }

  // Devices whose topics exist but that send nothing now are listed too.
  async refreshTopics() {
    try {
      const response = await api("/api/overview", { cache: "no-store" });
      if (!response.ok) return;
      const doc = await response.json();
      for (const t of doc.topics) if (DEVICE_TOPIC.test(t.name)) this.device(t.name);
    } catch {
      // the server is away: the socket's state says so
    }
  }

  device(id) {
    let card = this.devices.get(id);
    if (card) return card;
    card = new DeviceCard(id);
    this.devices.set(id, card);
    const number = (name) => Number(DEVICE_TOPIC.exec(name)[1]);
    const ids = [...this.devices.keys()].sort((a, b) => number(a) - number(b));
    replace(this.container, ...ids.map((i) => this.devices.get(i).node));
    this.counter.textContent = String(this.devices.size);
    return card;
  }

  receive(record) {
    if (record["@type"]) {
      this.setStatus(false, record.message);
      return;
    }
    this.records += 1;
    const topic = record.topic;
    if (DEVICE_TOPIC.test(topic)) {
      const card = this.device(topic);
      if (record.key === "alert") this.joystick(card, record.value);
      else card.reading(record);
      return;
    }
    const own = LED_TOPIC.exec(topic);
    if (own) {
      this.device(own[1]).led.show(record.value, topic);
      return;
    }
    if (topic === "alerts") for (const card of this.devices.values()) card.led.show(record.value, topic);
  }

  joystick(card, event) {
    card.joystick();
    if (event === null || typeof event !== "object") return;
    const held = event.button === "held";
    this.toasts.show(held ? "error" : "success", `${card.id}: joystick ${event.direction}`, held ? "held" : "pressed");
  }
}
