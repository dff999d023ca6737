// The SQL editor: statements go to POST /ksql, pull queries to POST /query-stream, and push
// queries (SELECT ... EMIT CHANGES, PRINT) over a WebSocket to /ws/query, whose rows stream
// into the results table and the live chart.

import { cellText, count, empty, frameScheduler, h, postJson, replace, splitStatements, table, wsUrl } from "./util.js";

const PUSH = /^\s*(SELECT\b[\s\S]*\bEMIT\s+(CHANGES|FINAL)\b|PRINT\b)/i;
const PULL = /^\s*SELECT\b/i;
const SHOWN_ROWS = 200;
const TABLE_REDRAW_MS = 250;

function errorBox(message) {
  return h("div", { class: "error-box" }, message);
}

function errorMessage(result) {
  const doc = result.doc;
  if (doc && typeof doc === "object" && !Array.isArray(doc) && doc.message) return doc.message;
  if (Array.isArray(doc) && doc[0]?.message) return doc[0].message;
  return result.text || `HTTP ${result.status}`;
}

// DESCRIBE's entity: a line about the source, then its columns.
function descriptionView(d) {
  const fields = (d.fields || []).map((f) => [f.name, f.schema?.type ?? "", f.type === "KEY" ? "key" : ""]);
  const about = `${d.type} ${d.name} · topic ${d.topic} · ${d.keyFormat}/${d.valueFormat}`;
  const queries = [...(d.writeQueries || []), ...(d.readQueries || [])].map((q) => q.id);
  return [
    h("div", { class: "message-box" }, about + (queries.length ? ` · queries ${queries.join(", ")}` : "")),
    table(["column", "type", ""], fields),
  ];
}

// One /ksql entity as the page shows it: its message, then its lists as tables.
function entityView(entity) {
  if (entity.sourceDescription) return descriptionView(entity.sourceDescription);
  const parts = [];
  const status = entity.commandStatus;
  if (status) parts.push(h("div", { class: "message-box" }, `${status.status}: ${status.message}`));
  if (entity.message && !status) parts.push(h("div", { class: "message-box" }, entity.message));
  for (const [name, value] of Object.entries(entity)) {
    if (Array.isArray(value) && (value.length === 0 || typeof value[0] === "object") && name !== "warnings") {
      parts.push(h("div", { class: "result-title" }, name));
      if (!value.length) {
        parts.push(empty("none"));
        continue;
      }
      const columns = [...new Set(value.flatMap((v) => Object.keys(v)))];
      parts.push(table(columns, value.map((v) => columns.map((c) => cellText(v[c])))));
    } else if (value && typeof value === "object" && !Array.isArray(value) && name !== "commandStatus") {
      parts.push(h("div", { class: "result-title" }, name));
      parts.push(h("pre", { class: "json" }, JSON.stringify(value, null, 2)));
    }
  }
  if (!parts.length) parts.push(h("pre", { class: "json" }, JSON.stringify(entity, null, 2)));
  return parts;
}

export class SqlEditor {
  constructor(chart) {
    this.chart = chart;
    this.input = document.getElementById("sql");
    this.runButton = document.getElementById("run");
    this.stopButton = document.getElementById("stop");
    this.earliest = document.getElementById("earliest");
    this.status = document.getElementById("sql-status");
    this.results = document.getElementById("results");
    this.socket = null;
    this.rows = [];
    this.received = 0;
    this.lastDraw = 0;
    this.drawTimer = null;
    this.scheduleRows = frameScheduler(() => this.drawRows());
    this.runButton.addEventListener("click", () => this.run());
    this.stopButton.addEventListener("click", () => this.stop("stopped"));
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.run();
      }
    });
  }

  async run() {
    const statements = splitStatements(this.input.value);
    if (!statements.length) return;
    this.stop();
    replace(this.results);
    this.status.textContent = "running…";
    // statements run in order, consecutive non-queries together in one /ksql request
    let batch = [];
    const flush = async () => {
      if (!batch.length) return true;
      const ok = await this.runKsql(batch.join("\n"));
      batch = [];
      return ok;
    };
    for (let i = 0; i < statements.length; i++) {
      const text = statements[i];
      if (PUSH.test(text)) {
        if (!(await flush())) return;
        if (i < statements.length - 1) {
          this.results.append(errorBox("A push query runs until stopped: put it last."));
          this.status.textContent = "";
          return;
        }
        this.runPush(text);
        return;
      }
      if (PULL.test(text)) {
        if (!(await flush()) || !(await this.runPull(text))) return;
        continue;
      }
      batch.push(text);
    }
    if (await flush()) this.status.textContent = "done";
  }

  async runKsql(text) {
    const result = await postJson("/ksql", { ksql: text, streamsProperties: this.properties() }, "application/vnd.ksql.v1+json");
    if (!result.ok) {
      this.results.append(errorBox(errorMessage(result)));
      this.status.textContent = `error (HTTP ${result.status})`;
      return false;
    }
    for (const entity of result.doc || []) this.results.append(...entityView(entity));
    return true;
  }

  async runPull(text) {
    const result = await postJson("/query-stream", { sql: text, properties: this.properties() });
    if (!result.ok || !Array.isArray(result.doc)) {
      this.results.append(errorBox(errorMessage(result)));
      this.status.textContent = `error (HTTP ${result.status})`;
      return false;
    }
    const [header, ...rows] = result.doc;
    this.results.append(
      h("div", { class: "result-title" }, `${header.queryId} · ${rows.length} rows`),
      rows.length ? table(header.columnNames, rows.map((r) => r.map(cellText))) : empty("no rows"),
    );
    this.status.textContent = "done";
    return true;
  }

  properties() {
    return this.earliest.checked ? { "auto.offset.reset": "earliest" } : {};
  }

  runPush(text) {
    this.rows = [];
    this.received = 0;
    this.header = null;
    const socket = new WebSocket(wsUrl("/ws/query", { batch: "true" }));
    this.socket = socket;
    this.stopButton.disabled = false;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ ksql: text, streamsProperties: this.properties() }));
      this.status.textContent = "push query open";
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      const message = JSON.parse(event.data);
      if (!Array.isArray(message)) {
        if (message["@type"] && message.message) {
          this.results.append(errorBox(message.message));
          this.stop("failed");
          return;
        }
        this.header = message;
        this.chart.configure(message.columnNames, message.columnTypes);
        this.drawRows();
        return;
      }
      this.received += message.length;
      for (const row of message) this.rows.push(row);
      if (this.rows.length > SHOWN_ROWS * 4) this.rows = this.rows.slice(-SHOWN_ROWS);
      this.chart.push(message);
      this.scheduleRows();
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.stopButton.disabled = true;
      this.drawRows(true);
      if (event.code === 1000) this.status.textContent = `done · ${count(this.received)} rows`;
      else if (event.code === 1008 && event.reason === "unauthorized") this.status.textContent = "unauthorized: set a token";
      else if (!this.status.textContent.startsWith("stopped")) this.status.textContent = `closed (${event.code}) · ${count(this.received)} rows`;
    });
  }

  stop(reason) {
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close();
      this.stopButton.disabled = true;
      if (reason) this.status.textContent = `${reason} · ${count(this.received)} rows`;
    }
  }

  // The newest rows, newest first; redrawn at most every TABLE_REDRAW_MS however fast rows come.
  drawRows(force = false) {
    if (!this.header) return;
    const now = performance.now();
    if (!force && now - this.lastDraw < TABLE_REDRAW_MS) {
      if (!this.drawTimer) {
        this.drawTimer = setTimeout(() => {
          this.drawTimer = null;
          this.scheduleRows();
        }, TABLE_REDRAW_MS - (now - this.lastDraw));
      }
      return;
    }
    this.lastDraw = now;
    const shown = this.rows.slice(-SHOWN_ROWS).reverse();
    replace(
      this.results,
      h("div", { class: "result-title" }, `${this.header.queryId} · ${count(this.received)} rows${this.received > SHOWN_ROWS ? ` (newest ${SHOWN_ROWS} shown)` : ""}`),
      shown.length ? table(this.header.columnNames, shown.map((r) => r.map(cellText))) : empty("waiting for rows…"),
    );
    if (this.socket) this.status.textContent = `streaming · ${count(this.received)} rows`;
  }
}
