// The scenarios' outputs: fraud alerts (table POSSIBLE_FRAUD), VIP actions (topic
// VIP_ACTIONS) and the leaderboard (a Redis sorted set a sink keeps).

import { LiveSocket } from "./live.js";
import { api, clock, count, empty, frameScheduler, h, replace, table } from "./util.js";

const SHOWN = 50;
const LEADERBOARD_REFRESH_MS = 2000;

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

// Each change of POSSIBLE_FRAUD as it happens: a row a card and window, its count updated.
// A push query rather than a tail of the topic: the table's key is the card and its window
// start packed in binary, which the query's columns give apart (CARD_NUMBER, WINDOWSTART).
export class FraudAlerts {
  constructor(container, counter) {
    this.container = container;
    this.counter = counter;
    this.alerts = new Map(); // card|window -> alert
    this.received = 0;
    this.waiting = "waiting for POSSIBLE_FRAUD (examples/fraud)…";
    this.schedule = frameScheduler(() => this.draw());
    this.draw();
    this.socket = new LiveSocket(
      "/ws/query",
      { batch: "true" },
      {
        onOpen: (socket) => socket.send(JSON.stringify({ ksql: "SELECT * FROM POSSIBLE_FRAUD EMIT CHANGES;" })),
        onMessage: (message) => this.receive(message),
      },
    );
  }

  receive(message) {
    if (message["@type"]) {
      // not there yet (a server whose scenarios are still being created, or not installed):
      // a state to wait in, not an error; the socket asks again in a moment
      this.waiting = /does not exist/.test(message.message || "")
        ? "waiting for POSSIBLE_FRAUD to be created (examples/fraud)…"
        : `waiting: ${message.message}`;
      this.schedule();
      return;
    }
    if (!Array.isArray(message)) {
      this.columns = message.columnNames;
      this.waiting = "no suspicious card yet";
      this.schedule();
      return;
    }
    const at = this.columns.indexOf.bind(this.columns);
    const fixed = ["CARD_NUMBER", "WINDOWSTART", "WINDOWEND"];
    const countAt = this.columns.findIndex((c) => !fixed.includes(c));
    for (const row of message) {
      const alert = {
        card: row[at("CARD_NUMBER")],
        windowStart: row[at("WINDOWSTART")],
        windowEnd: row[at("WINDOWEND")],
        attempts: row[countAt],
        seen: Date.now(),
      };
      const id = `${alert.card}|${alert.windowStart}`;
      this.alerts.delete(id); // the newest change goes to the top
      this.alerts.set(id, alert);
      this.received += 1;
    }
    while (this.alerts.size > SHOWN) this.alerts.delete(this.alerts.keys().next().value);
    this.schedule();
  }

  draw() {
    this.counter.textContent = this.alerts.size ? count(this.alerts.size) : "";
    if (!this.alerts.size) {
      replace(this.container, empty(this.waiting));
      return;
    }
    const rows = [...this.alerts.values()].reverse();
    replace(
      this.container,
      table(
        ["card", { name: "attempts", class: "num" }, "window"],
        rows.map((a) => ({
          attrs: { class: "alert-row" },
          cells: [
            h("span", { class: "mono" }, a.card),
            h("strong", { class: "errors" }, a.attempts),
            `${time(a.windowStart)} – ${time(a.windowEnd)}`,
          ],
        })),
      ),
    );
  }
}

// The records of topic VIP_ACTIONS as they arrive (the user's id is the record's key).
export class VipActions {
  constructor(container, counter) {
    this.container = container;
    this.counter = counter;
    this.actions = [];
    this.received = 0;
    this.schedule = frameScheduler(() => this.draw());
    this.draw();
    // a pattern waits for the topic to appear; a topic name would be refused until it does
    this.socket = new LiveSocket(
      "/ws/topics",
      { pattern: "^VIP_ACTIONS$", from: "latest" },
      { onMessage: (record) => this.receive(record) },
    );
  }

  receive(record) {
    if (record["@type"] || record.value === null || typeof record.value !== "object") return;
    const v = record.value;
    this.actions.push({
      at: record.timestamp,
      userid: v.USERID ?? record.key,
      fullname: v.FULLNAME ?? v.NAME,
      url: v.URL,
      status: v.STATUS,
    });
    if (this.actions.length > SHOWN * 4) this.actions = this.actions.slice(-SHOWN);
    this.received += 1;
    this.schedule();
  }

  draw() {
    this.counter.textContent = this.received ? count(this.received) : "";
    if (!this.actions.length) {
      replace(this.container, empty("waiting for VIP_ACTIONS (examples/clickstream)…"));
      return;
    }
    const statusClass = (s) => (s >= 500 ? "badge bad" : s >= 400 ? "badge other" : "badge running");
    replace(
      this.container,
      table(
        ["time", "user", "name", "url", "status"],
        this.actions
          .slice(-SHOWN)
          .reverse()
          .map((a) => ({
            attrs: { class: "vip-row" },
            cells: [clock(a.at), h("span", { class: "mono" }, a.userid), a.fullname, h("span", { class: "mono" }, a.url), h("span", { class: statusClass(a.status) }, a.status)],
          })),
      ),
    );
  }
}

// The top bidders of the newest hour: GET /api/redis/top every 2 s.
export class Leaderboard {
  constructor(container, keyLine, { pattern = "leaderboard:*", n = 10 } = {}) {
    this.container = container;
    this.keyLine = keyLine;
    this.pattern = pattern;
    this.n = n;
    this.key = null;
    this.members = [];
    this.error = null;
    replace(this.container, empty("reading Redis…"));
    this.refresh();
    setInterval(() => this.refresh(), LEADERBOARD_REFRESH_MS);
  }

  async refresh() {
    const query = new URLSearchParams({ pattern: this.pattern, n: String(this.n) });
    try {
      const response = await api(`/api/redis/top?${query}`, { cache: "no-store" });
      const doc = await response.json();
      if (!response.ok) throw new Error(doc.message || `status ${response.status}`);
      this.key = doc.key;
      this.members = doc.members;
      this.error = null;
    } catch (e) {
      this.error = e.message;
    }
    this.draw();
  }

  draw() {
    if (this.error) {
      this.keyLine.textContent = "";
      replace(this.container, h("div", { class: "error-box" }, this.error));
      return;
    }
    if (!this.key) {
      this.keyLine.textContent = "";
      replace(this.container, empty(`no sorted set ${this.pattern} in Redis yet (examples/leaderboard)…`));
      return;
    }
    const suffix = this.key.slice(this.pattern.replace(/[*?[\\].*$/, "").length);
    const hour = /^[0-9]+$/.test(suffix) ? ` · the hour from ${time(Number(suffix))}` : "";
    this.keyLine.textContent = `ZREVRANGE ${this.key} 0 ${this.n - 1}${hour}`;
    const top = this.members[0]?.score || 1;
    replace(
      this.container,
      table(
        [{ name: "#", class: "num" }, "bidder", { name: "total bid", class: "num" }, ""],
        this.members.map((m, i) => ({
          attrs: { class: "leader-row" },
          cells: [i + 1, h("span", { class: "mono" }, m.member), count(Math.round(m.score)), h("div", { class: "bar", style: `width: ${Math.max(2, (80 * m.score) / top)}px` })],
        })),
      ),
    );
  }
}
