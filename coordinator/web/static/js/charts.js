// Charts drawn as inline SVG: a line over days, with labelled axes. No library.

const SVG = "http://www.w3.org/2000/svg";

function node(tag, attrs, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function shortNumber(value) {
  if (value !== 0 && Math.abs(value) < 1) return String(Number(value.toPrecision(2)));
  return new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 }).format(value);
}

/** Draw ``series`` ([{label, value}], oldest first) into ``container`` as an area line chart. */
export function lineChart(container, series, { title = "", empty = "No data yet." } = {}) {
  container.replaceChildren();
  if (!series.length) {
    container.textContent = empty;
    return;
  }
  // Drawn at the container's own width, so labels keep their size on a phone and a desktop.
  const width = Math.max(320, Math.round(container.clientWidth) || 640);
  const height = 240, left = 56, right = 12, top = 12, bottom = 28;
  const max = Math.max(...series.map((point) => point.value)) || 1;
  const step = series.length > 1 ? (width - left - right) / (series.length - 1) : 0;
  const x = (index) => left + (series.length > 1 ? index * step : (width - left - right) / 2);
  const y = (value) => top + (height - top - bottom) * (1 - value / max);
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  svg.append(node("title", {}, title));
  for (const fraction of [0, 0.5, 1]) {
    const level = max * fraction;
    svg.append(node("line", { class: "axis", x1: left, x2: width - right, y1: y(level), y2: y(level) }));
    svg.append(node("text", { x: left - 6, y: y(level) + 4, "text-anchor": "end" }, shortNumber(level)));
  }
  const points = series.map((point, index) => `${x(index)},${y(point.value)}`);
  if (series.length > 1) {
    svg.append(node("polygon", { class: "area", points: `${x(0)},${y(0)} ${points.join(" ")} ${x(series.length - 1)},${y(0)}` }));
  }
  svg.append(node("polyline", { class: "line", points: points.join(" ") }));
  series.forEach((point, index) => {
    const dot = node("circle", { cx: x(index), cy: y(point.value), r: 3, class: "bar" });
    dot.append(node("title", {}, `${point.label}: ${point.value.toLocaleString("en-US")}`));
    svg.append(dot);
  });
  const labelEvery = Math.max(1, Math.ceil(series.length / 6));
  series.forEach((point, index) => {
    if (index % labelEvery === 0 || index === series.length - 1) {
      const anchor = index === series.length - 1 && series.length > 1 ? "end" : "middle";
      svg.append(node("text", { x: x(index), y: height - 8, "text-anchor": anchor }, point.label.slice(5)));
    }
  });
  container.append(svg);
}
