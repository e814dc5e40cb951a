// Small DOM helpers, formatters, and the two drawings: a latency chart and a dependency graph.
// Everything is built with the DOM API (no innerHTML of data): values are text, never markup.

const SVG = "http://www.w3.org/2000/svg";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "value") el.value = v;
    else if (k === "testid") el.dataset.testid = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }

export function replace(el, ...children) { clear(el); append(el, children); return el; }

export function statePill(state, testid) {
  return h("span", { class: `state state-${String(state).toLowerCase()}`, testid, text: state });
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", { text: title }) : null, ...children);
}

export function field(label, control) {
  return h("label", { class: "field" }, h("span", { text: label }), control);
}

export function kv(rows) {
  return h("dl", { class: "kv" }, rows.map(([k, v, testid]) =>
    [h("dt", { text: k }), h("dd", { testid }, v ?? "—")]));
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert", testid: "error",
                    text: err instanceof Error ? err.message : String(err) });
}

export function time(t) {
  return new Date(t * 1000).toLocaleString([], { hour12: false });
}

export function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
}

export function duration(seconds) {
  seconds = Math.floor(seconds);
  const d = Math.floor(seconds / 86400), hh = Math.floor(seconds % 86400 / 3600);
  const mm = Math.floor(seconds % 3600 / 60), ss = seconds % 60;
  if (d) return `${d} d ${hh} h`;
  if (hh) return `${hh} h ${mm} min`;
  if (mm) return `${mm} min ${ss} s`;
  return `${ss} s`;
}

export function mb(kb) { return kb == null ? "—" : `${(kb / 1024).toFixed(1)} MB`; }

export function ms(v) { return v == null ? "—" : `${Number(v).toFixed(v < 10 ? 2 : 1)} ms`; }

export function pretty(value) { return JSON.stringify(value, null, 2); }

// A bar per invocation (newest right), height = duration, red = error, amber = throttled.
export function latencyChart(points, { width = 280, height = 56 } = {}) {
  const max = Math.max(1, ...points.map((p) => p.ms ?? 0));
  const n = 60, bw = width / n;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
                         "aria-label": "recent invocation durations" });
  svg.append(s("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5,
                         class: "axis" }));
  points.slice(-n).forEach((p, i) => {
    const value = p.throttled ? max : (p.ms ?? 0);
    const bh = Math.max(2, (value / max) * (height - 4));
    const kind = p.throttled ? "throttled" : p.error ? "error" : "ok";
    const bar = s("rect", { x: i * bw + 1, y: height - bh, width: Math.max(1, bw - 2),
                            height: bh, class: `bar bar-${kind}` });
    bar.append(s("title", {}, p.throttled ? "throttled" : `${ms(p.ms)}${p.error ? " " + p.error : ""}`));
    svg.append(bar);
  });
  svg.append(s("text", { x: 2, y: 10, class: "chart-label" }, `max ${ms(max)}`));
  return svg;
}

// Components in columns by dependency depth (dependencies to the right), arrows from a
// component to what it depends on; HARD solid, SOFT dashed. ``focus`` is highlighted.
export function dependencyGraph(graph, focus, onSelect) {
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const deps = new Map(graph.nodes.map((n) => [n.name, []]));
  for (const e of graph.edges) if (deps.has(e.from)) deps.get(e.from).push(e);
  const depth = new Map();
  const visit = (name, stack) => {
    if (depth.has(name)) return depth.get(name);
    if (stack.has(name)) return 0;
    stack.add(name);
    let d = 0;
    for (const e of deps.get(name) ?? []) d = Math.max(d, 1 + visit(e.to, stack));
    stack.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const e of graph.edges) if (!nodes.has(e.to)) nodes.set(e.to, { name: e.to, state: "MISSING" });
  for (const name of nodes.keys()) visit(name, new Set());
  const maxDepth = Math.max(0, ...depth.values());
  const columns = Array.from({ length: maxDepth + 1 }, () => []);
  for (const [name, d] of depth) columns[maxDepth - d].push(name);
  columns.forEach((c) => c.sort());
  const bw = 200, bh = 40, gx = 56, gy = 14;
  const width = columns.length * (bw + gx) - gx + 8;
  const height = Math.max(...columns.map((c) => c.length)) * (bh + gy) - gy + 8;
  const pos = new Map();
  columns.forEach((col, ci) => col.forEach((name, ri) =>
    pos.set(name, { x: 4 + ci * (bw + gx), y: 4 + ri * (bh + gy) })));
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, class: "graph",
                         role: "img", "aria-label": "dependency graph" });
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
  for (const e of graph.edges) {
    const a = pos.get(e.to), b = pos.get(e.from);
    if (!a || !b) continue;
    const x1 = b.x + bw, y1 = b.y + bh / 2, x2 = a.x, y2 = a.y + bh / 2;
    svg.append(s("path", { d: `M${x1},${y1} C${x1 + gx / 2},${y1} ${x2 - gx / 2},${y2} ${x2},${y2}`,
                           class: `edge edge-${String(e.type).toLowerCase()}`,
                           "marker-end": "url(#arrow)" }));
  }
  for (const [name, p] of pos) {
    const n = nodes.get(name);
    const g = s("g", { class: `node state-${String(n.state).toLowerCase()}${name === focus ? " focus" : ""}`,
                       transform: `translate(${p.x},${p.y})`, "data-name": name });
    g.append(s("rect", { width: bw, height: bh, rx: 6 }));
    g.append(s("text", { x: 8, y: 16, class: "node-name" }, name.length > 25 ? name.slice(0, 24) + "…" : name));
    g.append(s("text", { x: 8, y: 32, class: "node-state" }, `${n.version ?? ""} ${n.state}`));
    g.append(s("title", {}, name));
    if (onSelect && n.state !== "MISSING") g.addEventListener("click", () => onSelect(name));
    svg.append(g);
  }
  return svg;
}
