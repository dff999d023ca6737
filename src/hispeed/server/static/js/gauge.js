// A half-circle gauge (SVG): 0 at the top, negative values to the left, positive to the
// right. The scale starts at ±RANGE and widens to the next ten above the largest value seen.

const RANGE = 20;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// The point at `fraction` (-1 left .. 0 top .. 1 right) of the arc of radius r around (cx, cy).
function point(cx, cy, r, fraction) {
  const angle = (fraction * Math.PI) / 2;
  return [cx + r * Math.sin(angle), cy - r * Math.cos(angle)];
}

function arc(cx, cy, r, from, to) {
  const [x1, y1] = point(cx, cy, r, from);
  const [x2, y2] = point(cx, cy, r, to);
  const sweep = to > from ? 1 : 0;
  return `M ${x1} ${y1} A ${r} ${r} 0 0 ${sweep} ${x2} ${y2}`;
}

export class Gauge {
  constructor(label) {
    this.range = RANGE;
    this.value = null;
    this.node = svg("svg", { viewBox: "0 0 200 150", class: "gauge", role: "img" });
    this.node.append(svg("path", { d: arc(100, 100, 80, -1, 1), class: "gauge-track" }));
    this.bar = svg("path", { d: "", class: "gauge-bar" });
    this.needle = svg("line", { x1: 100, y1: 100, x2: 100, y2: 28, class: "gauge-needle" });
    this.node.append(this.bar, this.needle, svg("circle", { cx: 100, cy: 100, r: 5, class: "gauge-hub" }));
    this.text = svg("text", { x: 100, y: 128, class: "gauge-value" });
    this.text.textContent = "–";
    this.labelText = svg("text", { x: 100, y: 146, class: "gauge-label" });
    this.labelText.textContent = label;
    this.minText = svg("text", { x: 20, y: 116, class: "gauge-scale" });
    this.maxText = svg("text", { x: 180, y: 116, class: "gauge-scale" });
    this.node.append(this.text, this.labelText, this.minText, this.maxText);
    this.drawScale();
  }

  drawScale() {
    this.minText.textContent = String(-this.range);
    this.maxText.textContent = String(this.range);
  }

  set(value) {
    if (!Number.isFinite(value)) return;
    this.value = value;
    if (Math.abs(value) > this.range) {
      this.range = Math.ceil(Math.abs(value) / 10) * 10;
      this.drawScale();
    }
    const fraction = value / this.range;
    const [x, y] = point(100, 100, 72, fraction);
    this.needle.setAttribute("x2", x);
    this.needle.setAttribute("y2", y);
    this.bar.setAttribute("d", Math.abs(fraction) < 1e-3 ? "" : arc(100, 100, 80, 0, fraction));
    this.bar.classList.toggle("negative", value < 0);
    this.text.textContent = value.toFixed(1);
  }
}
