// The panels fed by GET /api/overview: streams, tables, topics, running queries, processing log.

import { api, clock, count, empty, h, rate, replace, table } from "./util.js";

const REFRESH_MS = 2000;

function schemaText(source) {
  const key = source.key_columns.map((c) => `${c.name} ${c.type} KEY`);
  const values = source.value_columns.map((c) => `${c.name} ${c.type}`);
  return [...key, ...values].join(", ");
}

function sourcesTable(sources) {
  if (!sources.length) return empty("none yet");
  return table(
    ["name / topic", "formats", { name: "records", class: "num" }, { name: "columns", class: "wrap" }],
    sources.map((s) => [
      h("div", {}, h("strong", {}, s.name), h("div", { class: "mono muted" }, s.topic)),
      `${s.key_format}/${s.value_format}${s.windowed ? " · windowed" : ""}`,
      count(s.records),
      h("span", { class: "mono" }, schemaText(s)),
    ]),
  );
}

function topicsTable(topics, showInternal) {
  const shown = topics.filter((t) => showInternal || !t.internal);
  if (!shown.length) return empty("no topics yet");
  return table(
    ["name", { name: "partitions", class: "num" }, { name: "records", class: "num" }],
    shown.map((t) => ({
      attrs: { class: t.internal ? "internal" : "" },
      cells: [h("span", { class: "mono" }, t.name), t.partitions, count(t.records)],
    })),
  );
}

function queriesTable(queries) {
  if (!queries.length) return empty("no queries running");
  return table(
    [
      "id",
      "kind",
      "state",
      { name: "SQL", class: "sql" },
      { name: "records in", class: "num" },
      { name: "records out", class: "num" },
      { name: "in/s", class: "num" },
      { name: "out/s", class: "num" },
      { name: "lag", class: "num" },
      { name: "errors", class: "num" },
      "last error",
    ],
    queries.map((q) => [
      h("span", { class: "mono" }, q.id),
      h("span", { class: `badge ${q.kind}` }, q.kind),
      h("span", { class: `badge ${stateClass(q.state)}` }, q.state),
      h("span", { title: q.sql }, q.sql),
      count(q.records_in),
      count(q.records_out),
      rate(q.throughput_in),
      rate(q.throughput_out),
      count(q.lag),
      q.errors ? h("span", { class: "errors" }, count(q.errors)) : "0",
      // a query in ERROR: why (it is retried with a backoff; TERMINATE stops it)
      q.error ? h("span", { class: "errors", title: q.error }, q.error) : "",
    ]),
  );
}

// RUNNING green, ERROR red, anything else (a connector RETRYING) amber
function stateClass(state) {
  return state === "RUNNING" ? "running" : state === "ERROR" ? "error" : "other";
}

function connectorsTable(connectors) {
  if (!connectors.length) return empty("no connectors (CREATE SINK|SOURCE CONNECTOR ...)");
  return table(
    [
      "name",
      "type",
      "class",
      "state",
      "topics",
      { name: "records", class: "num" },
      { name: "lag", class: "num" },
      { name: "errors", class: "num" },
      "last error",
    ],
    connectors.map((c) => [
      h("span", { class: "mono" }, c.name),
      c.type,
      c.class,
      h("span", { class: `badge ${c.state === "RUNNING" ? "running" : "other"}` }, c.state),
      (c.topics || []).join(", "),
      count(c.records),
      c.lag === null || c.lag === undefined ? "–" : count(c.lag),
      c.errors ? h("span", { class: "errors" }, count(c.errors)) : "0",
      c.last_error ? h("span", { title: c.last_error }, c.last_error) : "",
    ]),
  );
}

function processingLogTable(records) {
  if (!records.length) return empty("no processing errors");
  return table(
    ["time", "query / type", "where", { name: "message", class: "wrap" }],
    records
      .slice()
      .reverse()
      .map((r) => {
        const v = typeof r.value === "object" && r.value !== null ? r.value : { message: String(r.value) };
        const where = v.topic !== undefined ? `${v.topic}[${v.partition}]@${v.offset}` : "";
        return [
          clock(r.timestamp),
          h("div", {}, h("div", { class: "mono" }, v.query || "–"), h("div", { class: "muted" }, v.type || "")),
          h("span", { class: "mono" }, where),
          v.message || "",
        ];
      }),
  );
}

export class OverviewPanels {
  constructor(onStatus) {
    this.onStatus = onStatus;
    this.last = null;
    this.showInternal = document.getElementById("show-internal");
    this.showInternal.addEventListener("change", () => this.last && this.render(this.last));
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    try {
      const response = await api("/api/overview", { cache: "no-store" });
      if (!response.ok) {
        this.onStatus(false, response.status === 401 ? "unauthorized: log in or set a token" : `overview: HTTP ${response.status}`);
        return;
      }
      const doc = await response.json();
      this.last = doc;
      this.render(doc);
      this.onStatus(true, `connected · updated ${clock(doc.time)}`);
    } catch (e) {
      this.onStatus(false, `server unreachable (${e.message})`);
    }
  }

  render(doc) {
    document.getElementById("version").textContent = doc.version ? `v${doc.version}` : "";
    replace(document.getElementById("streams"), sourcesTable(doc.streams));
    replace(document.getElementById("tables"), sourcesTable(doc.tables));
    replace(document.getElementById("topics"), topicsTable(doc.topics, this.showInternal.checked));
    replace(document.getElementById("queries"), queriesTable(doc.queries));
    replace(document.getElementById("plog"), processingLogTable(doc.processing_log));
    replace(document.getElementById("connectors"), connectorsTable(doc.connectors || []));
    document.getElementById("connectors-count").textContent = (doc.connectors || []).length || "";
    document.getElementById("streams-count").textContent = doc.streams.length || "";
    document.getElementById("tables-count").textContent = doc.tables.length || "";
    document.getElementById("topics-count").textContent = doc.topics.filter((t) => !t.internal).length || "";
    document.getElementById("queries-count").textContent = doc.queries.length || "";
    document.getElementById("plog-count").textContent = doc.processing_log.length || "";
    const names = document.getElementById("topic-names");
    replace(names, ...doc.topics.map((t) => h("option", { value: t.name })));
  }
}
