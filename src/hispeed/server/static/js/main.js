// The dashboard's entry point: wires the panels together and exposes them as
// `window.hispeedDashboard` (tests read the chart's state through it).

import { LiveChart } from "./chart.js";
import { OverviewPanels } from "./overview.js";
import { SqlEditor } from "./sql.js";
import { TopicTail } from "./tail.js";
import { setToken, token } from "./util.js";

function setStatus(ok, text) {
  document.getElementById("status-dot").className = `dot ${ok ? "ok" : "bad"}`;
  document.getElementById("status-text").textContent = text;
}

const tokenInput = document.getElementById("token");
tokenInput.value = token();
tokenInput.addEventListener("input", () => setToken(tokenInput.value.trim()));

const chart = new LiveChart(
  document.getElementById("chart"),
  document.getElementById("chart-key"),
  document.getElementById("chart-value"),
  document.getElementById("chart-window"),
  document.getElementById("chart-info"),
);
const overview = new OverviewPanels(setStatus);
const editor = new SqlEditor(chart);
const tail = new TopicTail();
overview.start();

window.hispeedDashboard = { chart, overview, editor, tail };
