// The demo page's entry point (/demo): the devices, fraud alerts, VIP actions and the
// leaderboard, exposed as `window.hispeedDemo` (tests read their state through it).

import { DeviceBoard, Toasts } from "./devices.js";
import { FraudAlerts, Leaderboard, VipActions } from "./feeds.js";
import { loadLedPalette } from "./led.js";

function setStatus(ok, text) {
  document.getElementById("status-dot").className = `dot ${ok ? "ok" : "bad"}`;
  document.getElementById("status-text").textContent = text;
}

const byId = (id) => document.getElementById(id);

try {
  await loadLedPalette();
} catch (e) {
  setStatus(false, `the LED pictures did not load: ${e.message}`);
}
const toasts = new Toasts(byId("toasts"));
const devices = new DeviceBoard(byId("devices"), byId("devices-count"), toasts, setStatus);
const fraud = new FraudAlerts(byId("fraud"), byId("fraud-count"));
const vip = new VipActions(byId("vip"), byId("vip-count"));
const leaderboard = new Leaderboard(byId("leaderboard"), byId("leaderboard-key"));

window.hispeedDemo = { devices, fraud, vip, leaderboard, toasts };
