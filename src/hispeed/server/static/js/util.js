// Shared helpers: requests to the server (with the optional token), DOM building, formatting.

const TOKEN_KEY = "hispeed.token";

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

// fetch against this server: the browser's basic credentials go along (same origin), and a
// token typed into the page goes as a bearer token.
export function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token()) headers.set("Authorization", `Bearer ${token()}`);
  return fetch(path, { ...options, headers, credentials: "same-origin" });
}

export async function postJson(path, body, accept = "application/json") {
  const response = await api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: accept },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  return { ok: response.ok, status: response.status, doc, text };
}

// A WebSocket URL on this server; browsers cannot set headers on one, so the token (if any)
// rides as ?access_token=.
export function wsUrl(path, params = {}) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  if (token()) url.searchParams.set("access_token", token());
  return url.toString();
}

// h("td", {class: "num"}, "12") -> <td class="num">12</td>
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "title") node.title = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// A table of `rows` (arrays of cells: strings, numbers or nodes) under `columns`, each
// column a name or {name, class}.
export function table(columns, rows) {
  const cols = columns.map((c) => (typeof c === "string" ? { name: c } : c));
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { class: c.class }, c.name)))),
    h(
      "tbody",
      {},
      rows.map((row) => h("tr", row.attrs || {}, (row.cells || row).map((cell, i) => h("td", { class: cols[i]?.class }, cell)))),
    ),
  );
}

export function replace(container, ...nodes) {
  container.replaceChildren(...nodes);
}

export function empty(text) {
  return h("div", { class: "empty" }, text);
}

const numberFormat = new Intl.NumberFormat("en-US");

export function count(n) {
  return n === null || n === undefined ? "–" : numberFormat.format(n);
}

export function rate(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 100) return `${numberFormat.format(Math.round(n))}/s`;
  return `${n.toFixed(1)}/s`;
}

export function cellText(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

// Split SQL text into statements at semicolons outside quotes, backticks and comments.
export function splitStatements(text) {
  const out = [];
  let start = 0;
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === "`" || c === '"') quote = c;
    else if (c === "-" && text[i + 1] === "-") {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end;
    } else if (c === ";") {
      out.push(text.slice(start, i + 1));
      start = i + 1;
    }
  }
  if (text.slice(start).trim()) out.push(text.slice(start));
  return out.map((s) => s.trim()).filter((s) => s && s !== ";" && !/^(--[^\n]*\n?\s*)+;?$/.test(s));
}

// Calls `render` at most once per animation frame however often `schedule` is called.
export function frameScheduler(render) {
  let pending = false;
  return function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  };
}
