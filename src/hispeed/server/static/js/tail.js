// The topic tail: records of a topic, a list of topics or a pattern over WebSocket /ws/topics.

import { cellText, clock, count, empty, frameScheduler, h, replace, table, wsUrl } from "./util.js";

const SHOWN_RECORDS = 200;
const PATTERN_CHARS = /[\^$*+?()[\]{}|\\]/;

export class TopicTail {
  constructor() {
    this.input = document.getElementById("tail-topic");
    this.beginning = document.getElementById("tail-beginning");
    this.startButton = document.getElementById("tail-start");
    this.stopButton = document.getElementById("tail-stop");
    this.view = document.getElementById("tail");
    this.counter = document.getElementById("tail-count");
    this.socket = null;
    this.records = [];
    this.received = 0;
    this.schedule = frameScheduler(() => this.draw());
    this.startButton.addEventListener("click", () => this.start());
    this.stopButton.addEventListener("click", () => this.stop());
    this.input.addEventListener("keydown", (e) => e.key === "Enter" && this.start());
    replace(this.view, empty("Pick a topic (or type a pattern such as ^device.*) and press Tail."));
  }

  start() {
    const what = this.input.value.trim();
    if (!what) return;
    this.stop();
    this.records = [];
    this.received = 0;
    const params = PATTERN_CHARS.test(what) ? { pattern: what } : { topics: what };
    params.from = this.beginning.checked ? "beginning" : "latest";
    const socket = new WebSocket(wsUrl("/ws/topics", params));
    this.socket = socket;
    this.stopButton.disabled = false;
    replace(this.view, empty(`waiting for records of ${what}…`));
    socket.addEventListener("message", (event) => {
      const record = JSON.parse(event.data);
      if (record["@type"]) {
        replace(this.view, h("div", { class: "error-box" }, record.message));
        return;
      }
      this.received += 1;
      this.records.push(record);
      if (this.records.length > SHOWN_RECORDS * 4) this.records = this.records.slice(-SHOWN_RECORDS);
      this.schedule();
    });
    socket.addEventListener("close", () => {
      if (socket === this.socket) {
        this.socket = null;
        this.stopButton.disabled = true;
      }
    });
  }

  stop() {
    if (this.socket) {
      this.socket.close();
      this.socket = null;
    }
    this.stopButton.disabled = true;
  }

  draw() {
    this.counter.textContent = count(this.received);
    const shown = this.records.slice(-SHOWN_RECORDS).reverse();
    replace(
      this.view,
      table(
        ["time", "topic", { name: "p", class: "num" }, { name: "offset", class: "num" }, "key", "value"],
        shown.map((r) => [
          clock(r.timestamp),
          h("span", { class: "mono" }, r.topic),
          r.partition,
          r.offset,
          h("span", { class: "mono" }, cellText(r.key)),
          h("span", { class: "mono" }, cellText(r.value)),
        ]),
      ),
    );
  }
}
