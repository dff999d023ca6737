// A device's 8x8 LED matrix, drawn as the device draws it. The pictures and colours come
// from the server (GET /api/led, made from `hispeed.demo.device.Led`); the choice of picture
// and colour for an event is `led_command` of hispeed/demo/device.py, ported below.

import { api, h } from "./util.js";

const DARK = [0, 0, 0];

let palette = null;

// The pictures and colours, fetched once for every matrix on the page.
export async function loadLedPalette() {
  if (palette) return palette;
  const response = await api("/api/led");
  if (!response.ok) throw new Error(`GET /api/led answered ${response.status}`);
  palette = await response.json();
  return palette;
}

// [direction, colour] the LED of `device` shows for `event` (as led_command in device.py):
// a command names its colour; "middle" is red; another device's event is blue; the
// device's own is green when pressed and red when held. Field names in any case, as there: a
// query's output (the shared alerts) names them in capitals.
export function ledCommand(device, record) {
  const event = Object.fromEntries(Object.entries(record).map(([k, v]) => [k.toLowerCase(), v]));
  const direction = String(event.direction ?? "middle");
  if ("color" in event || "colour" in event) return [direction, String(event.color ?? event.colour)];
  if (direction === "middle") return [direction, "red"];
  if (event.device !== undefined && event.device !== null && event.device !== device) return [direction, "blue"];
  return [direction, event.button === "pressed" ? "green" : "red"];
}

export class LedMatrix {
  constructor(device) {
    this.device = device;
    this.pixels = new Array(64).fill(DARK);
    this.lastEvent = null;
    this.lastCommand = null;
    this.shown = 0;
    this.cells = Array.from({ length: 64 }, () => h("div", { class: "led-cell" }));
    this.caption = h("div", { class: "led-caption muted" }, "dark: no event yet");
    this.node = h("div", { class: "led" }, h("div", { class: "led-grid" }, this.cells), this.caption);
  }

  // Show an event that reached the device (its alerts, the shared alerts or a command).
  // What the LED cannot show (an unknown direction or colour) changes nothing, as on a device.
  show(event, topic) {
    if (!palette || event === null || typeof event !== "object") return false;
    const [direction, color] = ledCommand(this.device, event);
    const picture = palette.pictures[direction];
    const rgb = palette.colors[color];
    if (!picture || !rgb) return false;
    this.pixels = picture.join("").split("").map((c) => (c === "X" ? rgb : DARK));
    this.lastEvent = event;
    this.lastCommand = [direction, color];
    this.shown += 1;
    this.pixels.forEach((p, i) => {
      const lit = p !== DARK;
      this.cells[i].style.background = lit ? `rgb(${p.join(",")})` : "";
      this.cells[i].style.boxShadow = lit ? `0 0 6px rgba(${p.join(",")}, 0.8)` : "";
    });
    const from = event.device && event.device !== this.device ? ` from ${event.device}` : "";
    this.caption.textContent = `${direction} · ${color}${from} (${topic})`;
    return true;
  }
}
