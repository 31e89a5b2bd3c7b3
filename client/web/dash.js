// dash.js — the grokwatch dashboard: the data of /api/series, kept live by
// the Server-Sent Events of /events, drawn on canvas by this file alone (no
// library, no network but the bridge that served it).
//
// State: one object per daemon (run) as /api/series gives it: steps, times
// and columns (name -> values, in step order), status, progress, alerts
// (periods in steps), errors.  Events change it in place; every change asks
// for one redraw on the next animation frame.  Tests and the benchmark read
// window.gw: gw.drawn (redraws completed), gw.charts (what each chart drew),
// gw.reloads (times the data was fetched whole), gw.fullyDrawnAt (ms from
// navigation to the first drawing of everything from loaded data).
"use strict";

const METRICS = [
  { key: "pathway_distance", title: "Pathway distance" },
  { key: "pathway_consistency", title: "Pathway consistency" },
  { key: "loss", title: "Loss (nats)" },
  { key: "memorized.pathway_distance", title: "Pathway distance, memorized subset" },
  { key: "memorized.n_samples", title: "Memorized samples" },
  { key: "health.overall.max_imbalance", title: "Expert load imbalance (max over layers)", overall: true },
  { key: "health.overall.dead_experts", title: "Dead experts", overall: true },
  { key: "health.overall.router_entropy", title: "Router entropy", overall: true },
  { key: "health.overall.churn", title: "Routing churn", overall: true },
];
const COLORS = ["#3767d6", "#d9480f", "#2b8a3e", "#ae3ec9", "#e8590c", "#1098ad", "#c2255c", "#5c940d",
  "#495057", "#f08c00"];
const DASHES = [[], [7, 4], [2, 3], [10, 3, 2, 3]];
const ALERT_COLORS = { grokking: "rgba(55,103,214,0.13)", generalization_saturated: "rgba(43,138,62,0.14)",
  routing_collapse: "rgba(179,38,30,0.13)", plateau: "rgba(176,125,18,0.14)" };

const gw = { runs: [], drawn: 0, charts: {}, groupsOff: new Set(), runsOff: new Set(), loadCache: {},
  instance: null, pending: false, loaded: false };
window.gw = gw;

// ---- data -------------------------------------------------------------------------------

function groupsOf(run) {
  const gs = [];
  for (const name in run.columns) {
    const m = /^groups\.([^.]+)\.pathway_distance$/.exec(name);
    if (m) gs.push(m[1]);
  }
  return gs;
}

function allGroups() {
  const s = [];
  for (const r of gw.runs) for (const g of groupsOf(r)) if (!s.includes(g)) s.push(g);
  return s;
}

function lowerBound(a, x) {
  let lo = 0, hi = a.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (a[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}

function applyResult(ev) {
  const r = gw.runs[ev.daemon];
  if (!r) { reload(); return; }
  r.run = ev.run;
  const i = lowerBound(r.steps, ev.step);
  const fresh = r.steps[i] !== ev.step;
  if (fresh) {
    r.steps.splice(i, 0, ev.step);
    r.times.splice(i, 0, ev.time);
    for (const name in r.columns) r.columns[name].splice(i, 0, null);
  } else {
    r.times[i] = ev.time;
    for (const name in r.columns) r.columns[name][i] = null;
  }
  for (const name in ev.values) {
    if (!(name in r.columns)) r.columns[name] = new Array(r.steps.length).fill(null);
    r.columns[name][i] = ev.values[name];
  }
}

function applyMemo(ev) {
  const r = gw.runs[ev.daemon];
  if (!r || !r.columns[ev.column]) return;
  for (const [step, v] of ev.points) {
    const i = lowerBound(r.steps, step);
    if (r.steps[i] === step) r.columns[ev.column][i] = v;
  }
}

function applyAlert(r, a) {
  const k = r.alerts.findIndex(p => p.fingerprint === a.fingerprint && p.from_step === a.from_step);
  if (k >= 0) r.alerts[k] = a; else r.alerts.push(a);
}

// Events that arrive while the data loads wait for it, then apply on top
// (each is idempotent: a result replaces its step's row).  The data says up
// to which event it holds (event_id: every event before it is in it); a
// stream that started after that event would have missed some: load again.
let reloading = false, buffered = [], recheck = null;

function fromRows(r) {
  // /api/series sends rows [step, time, value...]; the charts read columns.
  const n = r.rows.length, cols = {};
  r.steps = new Array(n); r.times = new Array(n);
  r.columns.forEach(name => { cols[name] = new Array(n).fill(null); });
  const names = r.columns;
  for (let i = 0; i < n; i++) {
    const row = r.rows[i];
    r.steps[i] = row[0]; r.times[i] = row[1];
    for (let c = 2; c < row.length; c++) cols[names[c - 2]][i] = row[c];
  }
  r.columns = cols;
  delete r.rows;
  return r;
}

async function reload() {
  if (reloading) return;
  reloading = true; buffered = []; gw.reloads = (gw.reloads || 0) + 1;
  for (;;) {
    try {
      gw.t = { fetch: performance.now() };
      const resp = await fetch("api/series", { cache: "no-store" });
      if (!resp.ok) throw new Error(resp.status);
      const data = await resp.json();
      gw.t.parsed = performance.now();
      gw.runs = data.runs.map(fromRows);
      gw.seriesEventId = data.event_id; gw.seriesInstance = data.instance;
      break;
    } catch (e) {
      await new Promise(ok => setTimeout(ok, 1000));
    }
  }
  gw.loaded = true; gw.loadCache = {}; reloading = false;
  for (const [fn, ev] of buffered) fn(ev);
  buffered = [];
  buildControls();
  redraw();
  const want = recheck; recheck = null;
  if (want && (gw.seriesInstance !== want.instance || gw.seriesEventId < want.next)) reload();
}

// ---- live events -------------------------------------------------------------------------

let source = null;

function connect() {
  const conn = document.getElementById("conn");
  source = new EventSource("events");
  source.addEventListener("hello", e => {
    const h = JSON.parse(e.data);
    conn.textContent = "live"; conn.className = "live";
    gw.instance = h.instance;
    if (h.resumed) return;
    // The stream delivers events from h.next on: the data must hold all
    // before it, from this bridge.
    if (reloading) recheck = h;
    else if (!gw.loaded || gw.seriesInstance !== h.instance || gw.seriesEventId < h.next) reload();
  });
  const on = (name, fn) => source.addEventListener(name, e => {
    const ev = JSON.parse(e.data);
    if (reloading || !gw.loaded) { buffered.push([fn, ev]); return; }
    fn(ev); redraw();
  });
  on("result", ev => { applyResult(ev); buildControls(); });
  on("memo", applyMemo);
  on("status", ev => { const r = gw.runs[ev.daemon]; if (r) { r.status = ev.status; r.alerts = ev.alerts; } });
  on("alert", ev => { const r = gw.runs[ev.daemon]; if (r) applyAlert(r, ev.alert); });
  on("progress", ev => { const r = gw.runs[ev.daemon]; if (r) r.progress = ev.progress; });
  on("daemon_error", ev => {
    const r = gw.runs[ev.daemon];
    if (r) { r.errors.push(ev.error); if (r.errors.length > 20) r.errors.shift(); }
  });
  on("resync", () => reload());
  source.onerror = () => {
    conn.textContent = "reconnecting"; conn.className = "down";
    // EventSource retries by itself after a network error, not after an
    // HTTP error (a full bridge answers 503): then start again.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

// ---- drawing -----------------------------------------------------------------------------

function redraw() {
  if (gw.pending) return;
  gw.pending = true;
  requestAnimationFrame(() => { gw.pending = false; drawAll(); });
}

function fmt(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return Number(v.toPrecision(5)).toString();
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

function setupCanvas(cv) {
  const dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth || 400, h = Number(cv.getAttribute("height")) || 200;
  if (cv.width !== Math.round(w * dpr)) { cv.width = Math.round(w * dpr); cv.style.height = h + "px"; }
  const ctx = cv.getContext("2d");
  ctx.setTransform(cv.width / w, 0, 0, cv.width / w, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function niceTicks(lo, hi, n) {
  const span = hi - lo || 1, step0 = span / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
  return out;
}

// One line chart: every (run, group) series of a metric, alert periods shaded.
function drawChart(spec) {
  let card = document.getElementById("chart-" + spec.key);
  if (!card) {
    card = el("div", { class: "card", id: "chart-" + spec.key });
    card.appendChild(el("h2", {}, spec.title));
    const cv = el("canvas", { height: "210" });
    card.appendChild(cv);
    card.appendChild(el("div", { class: "legend" }));
    document.getElementById("charts").appendChild(card);
    cv.addEventListener("mousemove", e => hover(spec.key, cv, e));
    cv.addEventListener("mouseleave", () => { document.getElementById("tip").style.display = "none"; });
  }
  const cv = card.querySelector("canvas"), legend = card.querySelector(".legend");
  const { ctx, w, h } = setupCanvas(cv);
  const groups = allGroups();
  const series = [];
  gw.runs.forEach((r, ri) => {
    if (gw.runsOff.has(r.run)) return;
    const gs = spec.overall ? [null] : groupsOf(r).filter(g => !gw.groupsOff.has(g));
    for (const g of gs) {
      const col = r.columns[spec.overall ? spec.key : "groups." + g + "." + spec.key];
      if (!col) continue;
      const steps = r.steps;
      // The points as [step, value] pairs only when asked for (hover,
      // tests): the drawing reads the columns directly.
      series.push({ run: r.run, group: g, steps, col,
        color: COLORS[(g === null ? 0 : groups.indexOf(g)) % COLORS.length], dash: DASHES[ri % DASHES.length],
        get points() {
          const p = [];
          for (let i = 0; i < steps.length; i++) if (col[i] !== null && isFinite(col[i])) p.push([steps[i], col[i]]);
          return p;
        } });
    }
  });
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) {
    const { steps, col } = s;
    for (let i = 0; i < steps.length; i++) {
      const y = col[i];
      if (y === null || !isFinite(y)) continue;
      if (steps[i] < x0) x0 = steps[i];
      if (steps[i] > x1) x1 = steps[i];
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  const chart = { key: spec.key, series: series.map(s => ({ run: s.run, group: s.group,
    get points() { return s.points; } })), bands: [] };
  gw.charts[spec.key] = chart;
  legend.textContent = "";
  if (!isFinite(x0)) {
    ctx.fillStyle = "#6b7385"; ctx.fillText("no values yet", 12, 20);
    return;
  }
  if (y1 - y0 < 1e-12 * Math.max(1, Math.abs(y1))) { const p = Math.abs(y1) * 0.05 || 0.5; y0 -= p; y1 += p; }
  const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  const L = 56, R = 24, T = 8, B = 24, pw = w - L - R, ph = h - T - B;
  const X = x => L + (x - x0) / (x1 - x0) * pw, Y = y => T + (y1 - y) / (y1 - y0) * ph;
  chart.view = { x0, x1, y0, y1, L, R, T, B, w, h };

  // Alert periods of the runs and groups shown.
  gw.runs.forEach(r => {
    if (gw.runsOff.has(r.run)) return;
    const last = r.steps.length ? r.steps[r.steps.length - 1] : x1;
    for (const a of r.alerts || []) {
      if (a.group && a.group !== "all" && gw.groupsOff.has(a.group)) continue;
      const from = a.from_step === null ? last : a.from_step, to = a.to_step === null ? last : a.to_step;
      const xa = X(Math.max(from, x0)), xb = X(Math.min(Math.max(to, from), x1));
      ctx.fillStyle = ALERT_COLORS[a.alertname] || "rgba(176,125,18,0.14)";
      ctx.fillRect(xa, T, Math.max(xb - xa, 3), ph);
      chart.bands.push({ run: r.run, alertname: a.alertname, group: a.group, from, to, firing: a.firing });
    }
  });

  ctx.strokeStyle = "#d9dde6"; ctx.fillStyle = "#6b7385"; ctx.lineWidth = 1;
  ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const t of niceTicks(y0, y1, 4)) {
    ctx.beginPath(); ctx.moveTo(L, Y(t)); ctx.lineTo(w - R, Y(t)); ctx.stroke(); ctx.fillText(fmt(t), L - 4, Y(t));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const t of niceTicks(x0, x1, 6)) ctx.fillText(fmt(t), X(t), h - B + 6);

  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 1.6; ctx.setLineDash(s.dash);
    const { steps, col } = s;
    let n = 0;
    ctx.beginPath();
    for (let i = 0; i < steps.length; i++) {
      const y = col[i];
      if (y === null || !isFinite(y)) continue;
      if (n++) ctx.lineTo(X(steps[i]), Y(y)); else ctx.moveTo(X(steps[i]), Y(y));
    }
    ctx.stroke(); ctx.setLineDash([]);
    if (n <= 200)
      for (let i = 0; i < steps.length; i++) {
        const y = col[i];
        if (y === null || !isFinite(y)) continue;
        ctx.beginPath(); ctx.arc(X(steps[i]), Y(y), 2, 0, 7); ctx.fill();
      }
    const item = el("span");
    const sw = el("i"); sw.style.background = s.color; item.appendChild(sw);
    item.appendChild(document.createTextNode((gw.runs.length > 1 ? s.run + " / " : "") + (s.group || s.run)));
    legend.appendChild(item);
  }
}

function hover(key, cv, e) {
  const chart = gw.charts[key], tip = document.getElementById("tip");
  if (!chart || !chart.view) return;
  const v = chart.view, rect = cv.getBoundingClientRect();
  const x = v.x0 + (e.clientX - rect.left - v.L) / (v.w - v.L - v.R) * (v.x1 - v.x0);
  let best = null;
  for (const s of chart.series) for (const p of s.points) if (!best || Math.abs(p[0] - x) < Math.abs(best - x)) best = p[0];
  if (best === null) return;
  const lines = ["step " + best];
  for (const s of chart.series) {
    const p = s.points.find(q => q[0] === best);
    if (p) lines.push((gw.runs.length > 1 ? s.run + " / " : "") + (s.group || "") + "  " + fmt(p[1]));
  }
  for (const b of chart.bands) if (best >= b.from && best <= b.to) lines.push("⚑ " + b.alertname + " (" + b.group + ")");
  tip.textContent = lines.join("\n");
  tip.style.display = "block"; tip.style.left = (e.clientX + 14) + "px"; tip.style.top = (e.clientY + 10) + "px";
}

// A heatmap of rows x cols values, light to dark blue.
function drawHeat(cv, rows, cols, value, rowLabel, colLabel) {
  const { ctx, w, h } = setupCanvas(cv);
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
    const v = value(i, j); if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#6b7385";
  if (!isFinite(lo)) { ctx.fillText("no values", 12, 20); return { lo, hi }; }
  const L = 60, T = 6, B = 22, R = 96, cw = (w - L - R) / cols, ch = (h - T - B) / rows;
  // One pixel a cell, scaled up without smoothing: fast for 16 x 1000.
  const img = new ImageData(cols, rows), px = img.data;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
    const v = value(i, j), k = 4 * (i * cols + j);
    const t = v === null || !isFinite(v) ? null : (hi > lo ? (v - lo) / (hi - lo) : 0.5);
    px[k] = t === null ? 238 : 240 - 200 * t; px[k + 1] = t === null ? 238 : 245 - 170 * t;
    px[k + 2] = t === null ? 238 : 255 - 120 * t; px[k + 3] = 255;
  }
  const off = document.createElement("canvas");
  off.width = cols; off.height = rows;
  off.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, L, T, w - L - R, h - T - B);
  ctx.fillStyle = "#6b7385"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
  const every = Math.max(1, Math.ceil(rows / 16));
  for (let i = 0; i < rows; i += every) ctx.fillText(rowLabel(i), L - 4, T + (i + 0.5) * ch);
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  const ce = Math.max(1, Math.ceil(cols / 10));
  for (let j = 0; j < cols; j += ce) ctx.fillText(colLabel(j), L + (j + 0.5) * cw, h - B + 5);
  ctx.textAlign = "left"; ctx.textBaseline = "middle";
  ctx.fillText("max " + fmt(hi), w - R + 6, T + 8); ctx.fillText("min " + fmt(lo), w - R + 6, h - B - 8);
  return { lo, hi };
}

function fillSelect(sel, values) {
  const cur = sel.value;
  if (sel.options.length === values.length && [...sel.options].every((o, i) => o.value === values[i])) return;
  sel.textContent = "";
  for (const v of values) sel.appendChild(el("option", { value: v }, v));
  if (values.includes(cur)) sel.value = cur;
}

async function drawLoad() {
  const runSel = document.getElementById("loadrun"), range = document.getElementById("loadstep");
  fillSelect(runSel, gw.runs.map(r => r.run));
  const r = gw.runs.find(x => x.run === runSel.value) || gw.runs[0];
  const cv = document.getElementById("load");
  if (!r || !r.steps.length) { setupCanvas(cv); return; }
  const atEnd = Number(range.value) >= Number(range.max);
  range.max = r.steps.length - 1;
  if (atEnd) range.value = range.max; // follow the latest step unless one was chosen
  const step = r.steps[Number(range.value)];
  document.getElementById("loadsteplabel").textContent = "step " + step;
  const key = r.run + "@" + step;
  let res = gw.loadCache[key];
  if (res === undefined) {
    gw.loadCache[key] = null;
    try {
      const resp = await fetch("api/result?run=" + encodeURIComponent(r.run) + "&step=" + step);
      gw.loadCache[key] = resp.ok ? await resp.json() : { error: resp.status };
    } catch (e) { delete gw.loadCache[key]; }
    drawLoad();
    return;
  }
  if (!res || !res.health || !res.health.layers) { setupCanvas(cv); return; }
  const layers = res.health.layers, ne = Math.max(0, ...layers.map(l => (l.load || []).length));
  drawHeat(cv, layers.length, ne, (i, j) => (layers[i].load || [])[j] ?? null, i => "layer " + i, j => "e" + j);
  gw.charts.load = { run: r.run, step, layers: layers.length, experts: ne };
  // Every chart and both heatmaps drawn from loaded data: the page is
  // fully drawn (ms since navigation; the benchmark reads it).
  if (gw.fullyDrawnAt === undefined) gw.fullyDrawnAt = performance.now();
}

function drawHealth() {
  const runSel = document.getElementById("healthrun"), keySel = document.getElementById("healthkey");
  fillSelect(runSel, gw.runs.map(r => r.run));
  const r = gw.runs.find(x => x.run === runSel.value) || gw.runs[0];
  const cv = document.getElementById("health");
  if (!r) { setupCanvas(cv); return; }
  const keys = [], layers = [];
  for (const name in r.columns) {
    const m = /^health\.layers\.(\d+)\.(.+)$/.exec(name);
    if (m) { if (!keys.includes(m[2])) keys.push(m[2]); if (!layers.includes(+m[1])) layers.push(+m[1]); }
  }
  const first = !keySel.options.length;
  fillSelect(keySel, keys);
  if (first && keys.includes("dead_experts")) keySel.value = "dead_experts";
  layers.sort((a, b) => a - b);
  const k = keySel.value;
  const rowsOf = layers.map(l => r.columns["health.layers." + l + "." + k] || []);
  drawHeat(cv, layers.length, r.steps.length, (i, j) => rowsOf[i][j] ?? null,
    i => "layer " + layers[i], j => String(r.steps[j]));
  gw.charts.health = { run: r.run, key: k, layers: layers.length, steps: r.steps.length };
}

function drawRuns() {
  const box = document.getElementById("runs");
  box.textContent = "";
  for (const r of gw.runs) {
    const card = el("div", { class: "card run" });
    const h = el("h2", {}, (r.run || "(unknown run)") + "  ");
    h.appendChild(el("span", { class: "state " + r.state }, r.state));
    card.appendChild(h);
    const st = r.status || {};
    const dl = el("dl", { class: "kv" });
    const kv = (k, v) => { dl.appendChild(el("dt", {}, k)); const d = el("dd"); d.append(v); dl.appendChild(d); };
    kv("daemon", r.endpoint);
    kv("state", String(st.state ?? "–"));
    kv("results", String(st.results ?? r.steps.length) + (st.last_step !== undefined ? ", last step " + st.last_step : ""));
    kv("pending / queue", String(st.pending ?? "–") + " / " + String(st.queue ?? "–"));
    const job = st.job;
    if (job && typeof job === "object") {
      const done = job.layers_done ?? 0, n = job.n_layers || 0;
      const bar = el("div", { class: "bar" }); const fill = el("div"); fill.style.width = (n ? 100 * done / n : 0) + "%";
      bar.appendChild(fill);
      const d = el("div"); d.append("step " + (job.step ?? "?") + (n ? ", layer " + done + " of " + n : "")); d.appendChild(bar);
      kv("job", d);
    } else kv("job", "idle");
    kv("failures", String(st.failures ?? 0));
    kv("stream", "received " + r.received + ", gaps " + r.gaps + ", restarts " + r.restarts);
    card.appendChild(dl);
    const alerts = (r.alerts || []).slice().reverse();
    if (alerts.length) {
      card.appendChild(el("h2", { style: "margin-top:8px" }, "Alerts"));
      for (const a of alerts.slice(0, 12))
        card.appendChild(el("div", { class: "alert " + (a.firing ? "firing" : "resolved") },
          (a.firing ? "FIRING " : "resolved ") + a.alertname + " · " + a.group + " · " + a.metric +
          " · steps " + (a.from_step ?? "?") + "–" + (a.to_step ?? "now") + (a.summary ? " — " + a.summary : "")));
    }
    if (r.errors && r.errors.length) {
      card.appendChild(el("h2", { style: "margin-top:8px" }, "Recent errors"));
      const box2 = el("div", { class: "errors" });
      for (const e of r.errors.slice(-5)) box2.appendChild(el("div", {}, (e.step !== undefined ? "step " + e.step + ": " : "") + (e.error || "")));
      card.appendChild(box2);
    }
    box.appendChild(card);
  }
}

function buildControls() {
  const gs = allGroups(), box = document.getElementById("groups"), rbox = document.getElementById("runsel");
  const toggles = (container, names, off) => {
    if (container.dataset.names === names.join("\u0001")) return;
    container.dataset.names = names.join("\u0001");
    container.textContent = "";
    for (const n of names) {
      const lab = el("label"), cb = el("input", { type: "checkbox" });
      cb.checked = !off.has(n);
      cb.addEventListener("change", () => { if (cb.checked) off.delete(n); else off.add(n); redraw(); });
      lab.appendChild(cb); lab.append(" " + n + " "); container.appendChild(lab);
    }
  };
  toggles(box, gs, gw.groupsOff);
  toggles(rbox, gw.runs.map(r => r.run), gw.runsOff);
}

function drawAll() {
  const t0 = performance.now();
  drawRuns();
  for (const spec of METRICS) drawChart(spec);
  drawHealth();
  drawLoad();
  gw.drawn++;
  if (gw.t) gw.t.draw = (gw.t.draw || 0) + performance.now() - t0;
}

for (const id of ["loadrun", "loadstep", "healthrun", "healthkey"])
  document.getElementById(id).addEventListener("input", redraw);
window.addEventListener("resize", redraw);
// The data and the stream at once; hello tells whether the data was early.
reload();
connect();
