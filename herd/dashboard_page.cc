// The dashboard page's text (see dashboard_page.h).
#include "herd/dashboard_page.h"

namespace herd {

const char* const kDashboardHtml = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>herd dashboard</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;background:#f7f7f5;color:#222}
h1{font-size:20px;margin:0 0 12px} h2{font-size:15px;margin:0 0 8px}
.row{display:flex;gap:16px;flex-wrap:wrap} .card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px}
table{border-collapse:collapse} td,th{padding:3px 8px;text-align:right;border-bottom:1px solid #eee} th:first-child,td:first-child{text-align:left}
.up{color:#1a7f37} .down{color:#c62828} #status{color:#666;margin-left:8px;font-size:12px}
svg text{font:12px system-ui,sans-serif}
</style></head><body>
<h1>herd <span id="self"></span><span id="status">connecting…</span></h1>
<div class="row">
<div class="card"><h2>Topology</h2><svg id="topo" width="420" height="360" role="img" aria-label="herd topology"></svg></div>
<div class="card"><h2>Servers (rates over the last 10 s; graph: updates/s, last 5 min)</h2><table id="rates"><thead><tr><th>server</th><th>state</th><th>updates/s</th><th>errors/s</th><th>clients</th><th>last 5 min</th></tr></thead><tbody></tbody></table></div>
</div>
<div class="row" style="margin-top:16px">
<div class="card"><h2>Last client locations</h2><canvas id="map" width="720" height="360"></canvas>
<div style="font-size:11px;color:#666">Land outlines: Natural Earth (public domain), via the world-atlas package (ISC).</div></div>
<div class="card"><h2>Recent updates</h2><table id="recent"><thead><tr><th>client</th><th>server</th><th>lat</th><th>lng</th><th>age</th></tr></thead><tbody></tbody></table></div>
</div>
<script>
"use strict";
const token = (location.hash.match(/token=([^&]+)/) || [])[1] || "";
const q = token ? "?token=" + encodeURIComponent(token) : "";
const HISTORY_MS = 5 * 60 * 1000;
const st = {servers: [], links: [], info: {}, hist: {}, world: null};
const $ = (id) => document.getElementById(id);
function el(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
async function getJson(url) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), 900);
  try {
    const r = await fetch(url, {signal: ctl.signal, cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    return await r.json();
  } finally { clearTimeout(t); }
}
async function poll() {
  try {
    const mine = await getJson("/v1/dashboard" + q);
    st.servers = mine.servers; st.links = mine.links; $("self").textContent = "— " + mine.server;
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) { $("status").textContent = "own server unreachable: " + e.message; }
  await Promise.all(st.servers.map(async (s) => {
    let d = null;
    if (s.admin) { try { d = await getJson(s.admin + "/v1/dashboard" + q); } catch (e) { d = null; } }
    st.info[s.name] = d;
    if (d) {
      const h = st.hist[s.name] || (st.hist[s.name] = []);
      h.push({t: Date.now(), u: d.counters.updates, e: d.counters.errors});
      while (h.length && h[0].t < Date.now() - HISTORY_MS) h.shift();
    }
  }));
  draw();
}
function alive(n) { const d = st.info[n]; return !!(d && d.state === "serving"); }
function linkUp(a, b) {
  // Up when both ends serve and each end's outbound link to the other is connected.
  return alive(a) && alive(b) && st.info[a].link_up[b] === true && st.info[b].link_up[a] === true;
}
function rate(n, key, ms) {
  const h = st.hist[n] || [];
  if (h.length < 2) return 0;
  const last = h[h.length - 1];
  let first = h[0];
  for (const p of h) { if (p.t >= last.t - ms) { first = p; break; } }
  const dt = (last.t - first.t) / 1000;
  return dt > 0 ? (last[key] - first[key]) / dt : 0;
}
function drawTopo() {
  const svg = $("topo"); svg.textContent = "";
  const n = st.servers.length, cx = 210, cy = 180, r = 130, pos = {};
  st.servers.forEach((s, i) => {
    const a = -Math.PI / 2 + 2 * Math.PI * i / Math.max(n, 1);
    pos[s.name] = [cx + r * Math.cos(a), cy + r * Math.sin(a)];
  });
  for (const [a, b] of st.links) {
    if (!pos[a] || !pos[b]) continue;
    const up = linkUp(a, b);
    svg.appendChild(el("line", {x1: pos[a][0], y1: pos[a][1], x2: pos[b][0], y2: pos[b][1],
      stroke: up ? "#1a7f37" : "#c62828", "stroke-width": 3, "stroke-dasharray": up ? "" : "6 4",
      "data-link": a + "-" + b, "data-state": up ? "up" : "down"}));
  }
  for (const s of st.servers) {
    const ok = alive(s.name), [x, y] = pos[s.name];
    const g = el("g", {"data-server": s.name, "data-state": ok ? "up" : "down"});
    g.appendChild(el("circle", {cx: x, cy: y, r: 26, fill: ok ? "#e6f4ea" : "#fde7e7", stroke: ok ? "#1a7f37" : "#c62828", "stroke-width": 2}));
    g.appendChild(el("text", {x: x, y: y + 4, "text-anchor": "middle"}, s.name));
    svg.appendChild(g);
  }
}
function spark(n) {
  const h = st.hist[n] || [], w = 160, ht = 28, pts = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i].t - h[i - 1].t) / 1000;
    pts.push(dt > 0 ? (h[i].u - h[i - 1].u) / dt : 0);
  }
  const max = Math.max(1, ...pts), svg = el("svg", {width: w, height: ht});
  const d = pts.map((v, i) => (i ? "L" : "M") + (w * i / Math.max(1, pts.length - 1)).toFixed(1) + "," + (ht - 2 - (ht - 4) * v / max).toFixed(1)).join("");
  if (d) svg.appendChild(el("path", {d: d, fill: "none", stroke: "#3366cc", "stroke-width": 1.5}));
  return svg;
}
function drawRates() {
  const tb = $("rates").tBodies[0]; tb.textContent = "";
  for (const s of st.servers) {
    const d = st.info[s.name], tr = tb.insertRow();
    tr.setAttribute("data-server-row", s.name);
    tr.insertCell().textContent = s.name;
    const c = tr.insertCell(); c.textContent = alive(s.name) ? "up" : "down"; c.className = alive(s.name) ? "up" : "down";
    tr.insertCell().textContent = rate(s.name, "u", 10000).toFixed(1);
    tr.insertCell().textContent = rate(s.name, "e", 10000).toFixed(1);
    tr.insertCell().textContent = d ? d.clients_stored : "–";
    tr.insertCell().appendChild(spark(s.name));
  }
}
function drawMap() {
  const cv = $("map"), g = cv.getContext("2d"), W = cv.width, H = cv.height;
  const px = (lng, lat) => [(lng + 180) / 360 * W, (90 - lat) / 180 * H];
  g.fillStyle = "#dfeaf5"; g.fillRect(0, 0, W, H);
  const w = st.world;
  if (w && w.arcs) {
    // TopoJSON: quantized, delta-encoded arcs; drawn as outlines.
    const sc = w.transform ? w.transform.scale : [1, 1], tr = w.transform ? w.transform.translate : [0, 0];
    g.strokeStyle = "#7a8a7a"; g.lineWidth = 0.8; g.beginPath();
    for (const arc of w.arcs) {
      let x = 0, y = 0, lastX = null;
      arc.forEach((p, i) => {
        if (w.transform) { x += p[0]; y += p[1]; } else { x = p[0]; y = p[1]; }
        const [X, Y] = px(x * sc[0] + tr[0], y * sc[1] + tr[1]);
        // A step across half the map is the antimeridian, not a coast: lift the pen.
        if (i === 0 || Math.abs(X - lastX) > W / 2) g.moveTo(X, Y); else g.lineTo(X, Y);
        lastX = X;
      });
    }
    g.stroke();
  }
  const latest = {};
  for (const n in st.info) {
    const d = st.info[n];
    if (!d) continue;
    for (const r of d.recent) if (!latest[r.client] || latest[r.client].ms < r.ms) latest[r.client] = r;
  }
  const list = Object.values(latest).sort((a, b) => b.ms - a.ms).slice(0, 50);
  g.fillStyle = "#d93025";
  for (const r of list) { const [X, Y] = px(r.lng, r.lat); g.beginPath(); g.arc(X, Y, 3.5, 0, 2 * Math.PI); g.fill(); }
  const tb = $("recent").tBodies[0]; tb.textContent = "";
  for (const r of list.slice(0, 12)) {
    const tr = tb.insertRow();
    tr.insertCell().textContent = r.client; tr.insertCell().textContent = r.origin;
    tr.insertCell().textContent = r.lat.toFixed(3); tr.insertCell().textContent = r.lng.toFixed(3);
    tr.insertCell().textContent = Math.max(0, Math.round((Date.now() - r.ms) / 1000)) + " s";
  }
}
function draw() { drawTopo(); drawRates(); drawMap(); }
getJson("/world.json").then((w) => { st.world = w; drawMap(); }).catch(() => {});
poll();
setInterval(poll, 1000);
</script></body></html>
)HTML";

}  // namespace herd
