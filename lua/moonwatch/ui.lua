--- moonwatch.ui: the web UI, one self-contained page (plain JS and SVG, no build step) on
--- top of the debug API.
-- The graph page draws the data flow left to right, as Alloy's UI does: an edge goes from
-- the component that sends data to the one that gets it (exporter -> scrape -> relabel ->
-- remote_write: a component referenced in another's forward_to is downstream of it), with
-- its rate in samples per second over the chosen window (/api/v0/graph); nodes are
-- coloured by health, and say why on hover. A component's page (#/component/<id>) shows
-- its health, its inputs and outputs with their rates, its arguments, exports and debug
-- info (as the API gives them: secrets redacted), and live debugging: switched on there
-- per component, the last samples it received or emitted (/api/v0/livedebugging/<id>).
local M = {}

M.html = [==[<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>moonwatch</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header h1 a { color: #fff; text-decoration: none; }
  header span { color: #aab; }
  header label { margin-left: auto; color: #aab; }
  main { padding: 16px; }
  .panel { background: #fff; border: 1px solid #dde; border-radius: 6px; padding: 12px 16px; margin-bottom: 16px; overflow: auto; }
  #graph { padding: 0; min-height: 300px; }
  .node rect { stroke: #445; stroke-width: 1; rx: 6; cursor: pointer; }
  .node text { font-size: 12px; pointer-events: none; }
  .node:focus { outline: none; } .node:focus rect { stroke-width: 3; }
  .healthy rect { fill: #d7f5dd; } .unhealthy rect { fill: #f9d0d0; }
  .unknown rect { fill: #e8e8ee; } .exited rect { fill: #f3e6c4; }
  .edge { stroke: #889; stroke-width: 1.5; fill: none; marker-end: url(#arrow); }
  .edge.flowing { stroke: #3a6fd8; stroke-width: 2.5; marker-end: url(#arrow-flowing); }
  text.rate { font-size: 11px; fill: #2b4f9e; paint-order: stroke; stroke: #fff; stroke-width: 4px; text-anchor: middle; }
  .live-dot { fill: #d83a3a; }
  table { border-collapse: collapse; width: 100%; margin-bottom: 12px; }
  td, th { border-bottom: 1px solid #eef; text-align: left; padding: 4px 6px; vertical-align: top; }
  th { width: 30%; color: #556; font-weight: 600; }
  #live th, #flow th { width: auto; }
  #live td { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
  pre { margin: 0; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
  .badge { padding: 1px 8px; border-radius: 10px; font-size: 12px; }
  .badge.healthy { background: #d7f5dd; } .badge.unhealthy { background: #f9d0d0; }
  .badge.unknown { background: #e8e8ee; } .badge.exited { background: #f3e6c4; }
  .muted { color: #778; }
  button { font: inherit; padding: 2px 10px; cursor: pointer; }
</style>
</head>
<body>
<header><h1><a href="#/">moonwatch</a></h1><span id="summary">loading…</span>
  <label>rates over <select id="window"><option value="10">10s</option><option value="60" selected>1m</option>
  <option value="300">5m</option></select></label></header>
<main>
  <div id="page-graph" class="panel" hidden><div id="graph"><svg id="svg" xmlns="http://www.w3.org/2000/svg"></svg></div></div>
  <div id="page-component" hidden>
    <div class="panel">
      <h2 id="c-title"></h2>
      <p><span id="c-health" class="badge"></span> <span id="c-declared" class="muted"></span></p>
      <h3>Data flow</h3>
      <table id="flow"><thead><tr><th>direction</th><th>component</th><th>samples/s</th><th>samples</th></tr></thead>
      <tbody></tbody></table>
    </div>
    <div class="panel">
      <h3>Live debugging</h3>
      <p><button id="live-toggle">Start</button> <button id="live-clear">Clear</button>
        <span id="live-status" class="muted"></span></p>
      <table id="live"><thead><tr><th>received</th><th>direction</th><th>sample</th></tr></thead><tbody></tbody></table>
    </div>
    <div class="panel" id="c-sections"></div>
  </div>
</main>
<script>
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const W = 240, H = 64, GX = 120, GY = 24, PAD = 20;
let graph = null;      // the last /api/v0/graph answer
let live = null;       // live view state of the component page: { id, enabled, seq, capacity }
let liveTimer = null;

function el(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function html(tag, text, parent, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}
function fmtRate(r) {
  if (r >= 100) return r.toFixed(0);
  if (r >= 10) return r.toFixed(1);
  if (r > 0) return Number(r.toPrecision(2)).toString();
  return "0";
}
function route() {
  const m = location.hash.match(/^#\/component\/(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

// Columns by data flow: a component's column is one more than its furthest sender's
// (edges closing a cycle are left out); in each column, components are ordered by the
// mean position of their neighbours, to keep edges short and straight.
function layout(components, edges) {
  const ids = components.map(c => c.id);
  const ins = new Map(ids.map(id => [id, []])), outs = new Map(ids.map(id => [id, []]));
  edges.forEach(e => {
    if (ins.has(e.to) && outs.has(e.from) && e.from !== e.to) { ins.get(e.to).push(e.from); outs.get(e.from).push(e.to); }
  });
  const rank = new Map(), onStack = new Set();
  function visit(id) {
    if (rank.has(id)) return rank.get(id);
    if (onStack.has(id)) return -1;
    onStack.add(id);
    let r = 0;
    ins.get(id).forEach(p => { const pr = visit(p); if (pr >= 0) r = Math.max(r, pr + 1); });
    onStack.delete(id);
    rank.set(id, r);
    return r;
  }
  ids.forEach(visit);
  const columns = [];
  ids.forEach(id => { const k = rank.get(id); (columns[k] = columns[k] || []).push(id); });
  for (let k = 0; k < columns.length; k++) columns[k] = columns[k] || [];
  const index = new Map();
  const reindex = () => columns.forEach(col => col.forEach((id, j) => index.set(id, j)));
  reindex();
  const mean = (list, own) => list.length ? list.reduce((s, x) => s + index.get(x), 0) / list.length : own;
  for (let pass = 0; pass < 4; pass++) {
    const down = pass % 2 === 0;
    for (let n = 0; n < columns.length; n++) {
      const col = columns[down ? n : columns.length - 1 - n];
      const key = new Map(col.map((id, j) => [id, mean(down ? ins.get(id) : outs.get(id), j)]));
      col.sort((a, b) => key.get(a) - key.get(b));
      reindex();
    }
  }
  const rows = Math.max(1, ...columns.map(c => c.length));
  const pos = new Map();
  columns.forEach((col, i) => {
    const top = PAD + (rows - col.length) * (H + GY) / 2;
    col.forEach((id, j) => pos.set(id, { x: PAD + i * (W + GX), y: top + j * (H + GY), w: W, h: H }));
  });
  return { pos, width: Math.max(W, 2 * PAD + columns.length * (W + GX) - GX), height: 2 * PAD + rows * (H + GY) - GY };
}

function drawGraph() {
  const svg = document.getElementById("svg");
  svg.textContent = "";
  const { components, edges } = graph;
  const { pos, width, height } = layout(components, edges);
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  const defs = el("defs", {}, svg);
  [["arrow", "#889"], ["arrow-flowing", "#3a6fd8"]].forEach(([id, fill]) => {
    const m = el("marker", { id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8,
      markerUnits: "userSpaceOnUse", orient: "auto" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill }, m);
  });
  edges.forEach(e => {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) return;
    const x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2;
    const dx = Math.max(40, Math.abs(x2 - x1) / 2);
    const path = el("path", { class: "edge" + (e.rate > 0 ? " flowing" : ""), "data-from": e.from, "data-to": e.to,
      d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}` }, svg);
    el("title", {}, path).textContent = `${e.from} → ${e.to} (${e.type})`;
    if (e.samples_total > 0) {
      const t = el("text", { class: "rate", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, "data-from": e.from, "data-to": e.to }, svg);
      t.textContent = `${fmtRate(e.rate)} samples/s`;
    }
  });
  components.forEach(c => {
    const p = pos.get(c.id);
    const g = el("g", { class: `node ${c.health.state}`, "data-id": c.id, tabindex: 0, role: "link" }, svg);
    el("title", {}, g).textContent = `${c.id}\n${c.health.state}: ${c.health.message}`;
    el("rect", { x: p.x, y: p.y, width: p.w, height: p.h }, g);
    el("text", { x: p.x + 10, y: p.y + 22, "font-weight": "bold" }, g).textContent = c.name;
    el("text", { x: p.x + 10, y: p.y + 40 }, g).textContent = `"${c.label}"`;
    const msg = c.health.message ? `${c.health.state}: ${c.health.message}` : c.health.state;
    el("text", { x: p.x + 10, y: p.y + 56, fill: "#556" }, g).textContent = msg.length > 36 ? msg.slice(0, 35) + "…" : msg;
    if (c.live_debugging) el("circle", { class: "live-dot", cx: p.x + p.w - 12, cy: p.y + 12, r: 5 }, g);
    const open = () => { location.hash = "#/component/" + encodeURIComponent(c.id); };
    g.addEventListener("click", open);
    g.addEventListener("keydown", ev => { if (ev.key === "Enter") open(); });
  });
}

function row(table, k, v) {
  const tr = table.insertRow(); html("th", k, tr);
  html("pre", typeof v === "string" ? v : JSON.stringify(v, null, 2), tr.insertCell());
}
function section(parent, title, obj) {
  html("h3", title, parent);
  const t = html("table", undefined, parent);
  const keys = obj && typeof obj === "object" ? Object.keys(obj).sort() : [];
  if (!keys.length) row(t, "", "(none)");
  keys.forEach(k => row(t, k, obj[k]));
}

async function getJSON(url) {
  const res = await fetch(url, { cache: "no-store" });
  return res.json();
}

async function showComponent(id) {
  const c = await getJSON(`/api/v0/components/${encodeURIComponent(id)}`);
  if (c.error) { document.getElementById("c-title").textContent = c.error; return; }
  document.getElementById("c-title").textContent = `${c.name} "${c.label}"`;
  const b = document.getElementById("c-health");
  b.className = `badge ${c.health.state}`;
  b.textContent = `${c.health.state}: ${c.health.message}`;
  document.getElementById("c-declared").textContent = `declared at ${c.file}:${c.line}`;
  const tbody = document.querySelector("#flow tbody");
  tbody.textContent = "";
  const mine = (graph ? graph.edges : []).filter(e => e.from === id || e.to === id);
  mine.sort((a, b) => (b.to === id) - (a.to === id));
  mine.forEach(e => {
    const tr = tbody.insertRow();
    const inbound = e.to === id, other = inbound ? e.from : e.to;
    tr.className = inbound ? "flow-in" : "flow-out";
    html("td", inbound ? "in, from" : "out, to", tr);
    const a = html("a", other, tr.insertCell());
    a.href = "#/component/" + encodeURIComponent(other);
    html("td", e.samples_total > 0 ? fmtRate(e.rate) : "—", tr, "rate");
    html("td", e.samples_total > 0 ? String(e.samples_total) : `(${e.type})`, tr);
  });
  if (!tbody.rows.length) html("td", "no data-flow edges", tbody.insertRow(), "muted");
  const s = document.getElementById("c-sections");
  s.textContent = "";
  section(s, "Arguments", c.arguments);
  section(s, "Exports", c.exports);
  section(s, "Debug info", c.debug_info);
  section(s, "References", { dependencies: c.dependencies, dependents: c.dependents });
}

// Live debugging: the entries newer than the last seen, newest on top, at most capacity rows.
function showLive(st) {
  live.enabled = st.enabled; live.capacity = st.capacity;
  document.getElementById("live-toggle").textContent = st.enabled ? "Stop" : "Start";
  document.getElementById("live-status").textContent = st.enabled
    ? `on: the last ${st.capacity} samples received or emitted (${st.samples_seen} seen)`
    : "off: switch it on to see the samples that pass through this component";
  const tbody = document.querySelector("#live tbody");
  st.entries.forEach(e => {
    if (e.seq <= live.seq) return;
    live.seq = e.seq;
    const tr = tbody.insertRow(0);
    tr.className = "live-entry";
    html("td", e.time, tr);
    html("td", e.direction === "in" ? `in, from ${e.peer}` : `out, to ${e.peer}`, tr);
    html("td", e.sample, tr);
  });
  while (tbody.rows.length > st.capacity) tbody.deleteRow(-1);
}
async function pollLive() {
  if (!live) return;
  const id = live.id;
  const st = await getJSON(`/api/v0/livedebugging/${encodeURIComponent(id)}?since=${live.seq}`);
  if (live && live.id === id) showLive(st);
}
async function setLive(body, method) {
  const res = await fetch(`/api/v0/livedebugging/${encodeURIComponent(live.id)}`, {
    method: method || "PUT", headers: { "Content-Type": "application/json" }, body: body && JSON.stringify(body) });
  const st = await res.json();
  if (!res.ok) { document.getElementById("live-status").textContent = st.error; return; }
  showLive(st);
}
document.getElementById("live-toggle").addEventListener("click", () => setLive({ enabled: !live.enabled }));
document.getElementById("live-clear").addEventListener("click", async () => {
  await setLive(null, "DELETE");
  document.querySelector("#live tbody").textContent = "";
});

async function refresh() {
  try {
    const win = document.getElementById("window").value;
    graph = await getJSON(`/api/v0/graph?window=${win}`);
    const counts = {};
    graph.components.forEach(c => counts[c.health.state] = (counts[c.health.state] || 0) + 1);
    document.getElementById("summary").textContent =
      `${graph.components.length} components: ` + Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
    const id = route();
    document.getElementById("page-graph").hidden = !!id;
    document.getElementById("page-component").hidden = !id;
    if (id) await showComponent(id); else drawGraph();
  } catch (e) {
    document.getElementById("summary").textContent = "cannot reach the API: " + e;
  }
}

async function navigate() {
  const id = route();
  clearInterval(liveTimer);
  live = null;
  document.querySelector("#live tbody").textContent = "";
  await refresh();
  if (id) {
    live = { id, enabled: false, seq: 0, capacity: 0 };
    await pollLive();
    liveTimer = setInterval(() => { if (live && live.enabled) pollLive(); }, 1000);
  }
}
window.addEventListener("hashchange", navigate);
document.getElementById("window").addEventListener("change", refresh);
navigate();
setInterval(refresh, 2000);
</script>
</body>
</html>
]==]

return M
