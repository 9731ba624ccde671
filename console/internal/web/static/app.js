// The console page: one board per server-sent event (/api/events), the
// charts' last minutes from /api/history, uPlot for the charts. Every
// number a test or a person reads carries data-k="<key>".
"use strict";

const KEEP = 300; // chart points kept (five minutes at one read a second)
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
const points = []; // {at, accepted_per_s, rejected_per_s, p99_ms, consumed_per_s{}, lag{}}
const charts = {};

const int = (v) => (v == null ? "n/a" : Math.round(v).toLocaleString("en-US"));
const rate = (v) => (v == null ? "n/a" : v.toFixed(1));
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "k") e.dataset.k = v; else if (k === "cls") e.className = v; else e.setAttribute(k, v);
  }
  if (text != null) e.textContent = text;
  return e;
};
const setK = (key, text) => document.querySelectorAll(`[data-k="${CSS.escape(key)}"]`).forEach((e) => { e.textContent = text; });

function render(b) {
  document.body.dataset.seq = b.seq;
  document.body.dataset.at = b.at;
  document.getElementById("updated").textContent = new Date(b.at).toLocaleTimeString("en-GB");
  renderStatus(b);
  renderFront(b.front);
  renderGroups(b);
  renderProducts(b);
  renderSystem(b);
}

function renderStatus(b) {
  const nav = document.getElementById("status");
  nav.replaceChildren();
  const down = [];
  for (const s of b.services) {
    nav.append(el("span", { cls: "pill " + (s.up ? "up" : "down"), k: `service.${s.name}`, title: s.error || s.url }, `${s.name} ${s.up ? "up" : "down"}`));
    if (!s.up) down.push(`${s.name}-service is down (${s.url}): ${s.error}`);
  }
  nav.append(el("span", { cls: "pill " + (b.broker.up ? "up" : "down"), k: "service.broker", title: b.broker.error || b.broker.namesrv }, `broker ${b.broker.up ? "up" : "down"}`));
  if (!b.broker.up) down.push(`broker is down (name server ${b.broker.namesrv}): ${b.broker.error}`);
  if (b.products_error) down.push(`sales unavailable: ${b.products_error}`);
  if (b.counts_error) down.push(`order counts unavailable: ${b.counts_error}`);
  const banner = document.getElementById("down");
  banner.hidden = down.length === 0;
  banner.textContent = down.join("\n");
}

function renderFront(f) {
  setK("front.accepted.per_s", rate(f.accepted.per_s));
  setK("front.accepted.total", int(f.accepted.total));
  setK("front.replayed.total", int(f.replayed.total));
  setK("front.rejected.per_s", rate(f.rejected_per_s));
  setK("front.p99_ms", f.p99_ms == null ? "n/a" : (f.p99_over ? "> " : "") + f.p99_ms.toFixed(1));
  setK("front.window_requests", int(f.window_requests));
  const body = document.querySelector("#reasons tbody");
  body.replaceChildren(...f.rejected.map((r) => {
    const tr = el("tr");
    tr.append(el("td", {}, r.reason), el("td", { k: `front.rejected.${r.reason}.per_s` }, rate(r.per_s) + "/s"),
      el("td", { k: `front.rejected.${r.reason}.total` }, int(r.total)));
    return tr;
  }));
}

function renderGroups(b) {
  setK("consume_rate", int(b.consume_rate));
  const body = document.querySelector("#group-table tbody");
  body.replaceChildren(...b.groups.map((g) => {
    const tr = el("tr", { cls: g.up ? "" : "down" });
    const k = (f) => `group.${g.group}.${f}`;
    const share = g.consumed.per_s == null ? "n/a" : Math.round((100 * g.consumed.per_s) / b.consume_rate) + "%";
    tr.append(
      el("td", { k: k("name") }, g.group),
      el("td", { cls: "state", k: k("service") }, g.up ? g.service : `${g.service} (down)`),
      el("td", { k: k("consumed.per_s") }, rate(g.consumed.per_s)),
      el("td", {}, share),
      el("td", { k: k("consumed.total") }, int(g.consumed.total)),
      el("td", { k: k("lag") }, g.up && g.lag == null ? "–" : int(g.lag)),
      el("td", { k: k("retries") }, int(g.retries)),
      el("td", { k: k("dlq") }, int(g.dlq)),
      el("td", { k: k("broker_dlq") }, int(g.broker_dlq)),
    );
    return tr;
  }));
}

function renderProducts(b) {
  const note = document.getElementById("products-error");
  note.hidden = !b.products_error;
  note.textContent = b.products_error ? "inventory-service did not answer: " + b.products_error : "";
  const body = document.querySelector("#product-table tbody");
  const rows = b.products.map((p) => {
    const tr = el("tr");
    const k = (f) => `product.${p.product_id}.${f}`;
    tr.append(
      el("td", { k: k("id") }, p.product_id), el("td", {}, p.name),
      el("td", { k: k("stock") }, int(p.stock)), el("td", { k: k("available") }, int(p.available)),
      el("td", { k: k("sold") }, int(p.sold)), el("td", { k: k("pending") }, int(p.pending)),
      el("td", { k: k("paid") }, int(p.paid)), el("td", { k: k("shipped") }, int(p.shipped)),
      el("td", { k: k("closed") }, int(p.closed)),
      el("td", {}, new Date(p.sale_started_at).toLocaleTimeString("en-GB")),
    );
    return tr;
  });
  if (rows.length === 0) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 10 }, b.products_error ? "n/a" : "no sale yet"));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function renderSystem(b) {
  setK("outbox.length", int(b.outbox.length));
  setK("outbox.age", b.outbox.oldest_age_s == null ? "n/a" : b.outbox.oldest_age_s.toFixed(1));
  setK("broker.state", b.broker.up ? "up" : "down");
  document.querySelector('[data-k="broker.state"]').className = "big " + (b.broker.up ? "ok" : "bad");
  document.getElementById("namesrv").textContent = b.broker.namesrv;
  setK("broker.stored.per_s", rate(b.broker.order_stored.per_s));
  setK("broker.stored.total", int(b.broker.order_stored.total));
  setK("broker.took_ms", b.broker.up ? b.broker.took_ms.toFixed(1) : "n/a");
  const body = document.querySelector("#outcomes tbody");
  const rows = b.outcomes.map((o) => {
    const tr = el("tr");
    tr.append(el("td", {}, `${o.metric}{${o.value}}`), el("td", { k: `outcome.${o.metric}.${o.value}.per_s` }, rate(o.per_s) + "/s"),
      el("td", { k: `outcome.${o.metric}.${o.value}.total` }, int(o.total)));
    return tr;
  });
  body.replaceChildren(...rows);
}

// --- charts -------------------------------------------------------------------

function pointOf(b) {
  const p = { at: b.at, accepted_per_s: b.front.accepted.per_s, rejected_per_s: b.front.rejected_per_s, p99_ms: b.front.p99_ms, consumed_per_s: {}, lag: {} };
  for (const g of b.groups) { p.consumed_per_s[g.group] = g.consumed.per_s; p.lag[g.group] = g.lag; }
  return p;
}

function addPoint(p) {
  points.push(p);
  if (points.length > KEEP) points.splice(0, points.length - KEEP);
}

// colorOf gives each series one color on every chart: by its place among
// the groups of the board (or its own name for the other series).
const colorIndex = {};
function colorOf(name) {
  const fixed = { "CONSUME_RATE": "#9ca3af", "accepted/s": "#2563eb", "rejected/s": "#dc2626" };
  if (name in fixed) return fixed[name];
  if (!(name in colorIndex)) colorIndex[name] = Object.keys(colorIndex).length;
  return COLORS[colorIndex[name] % COLORS.length];
}

// chart draws series (name → value of a point) against time in the element
// id, recreating the uPlot instance when the set of series changes.
function chart(id, series, yLabel) {
  if (typeof uPlot === "undefined") return; // the library failed to load: the numbers still show
  const names = Object.keys(series);
  const key = names.join("\u0000");
  const box = document.getElementById(id);
  const width = Math.max(box.clientWidth, 300);
  const data = [points.map((p) => Date.parse(p.at) / 1000), ...names.map((n) => points.map(series[n]))];
  let c = charts[id];
  if (c && c.key !== key) { c.plot.destroy(); c = null; }
  if (!c) {
    const opts = {
      width, height: 180,
      legend: { live: false },
      scales: { x: { time: true } },
      // Whole seconds on the time axis: a read is a second apart.
      axes: [{ incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600], space: 60 }, { label: yLabel, size: 60 }],
      series: [{}, ...names.map((n) => ({ label: n, stroke: colorOf(n), dash: n === "CONSUME_RATE" ? [6, 4] : undefined, width: 1.5, spanGaps: false }))],
    };
    c = charts[id] = { key, plot: new uPlot(opts, data, box) };
  } else {
    if (c.plot.width !== width) c.plot.setSize({ width, height: 180 });
    c.plot.setData(data);
  }
}

function drawCharts(b) {
  for (const g of b.groups) colorOf(g.group);
  chart("chart-front", {
    "accepted/s": (p) => p.accepted_per_s,
    "rejected/s": (p) => p.rejected_per_s,
  }, "requests/s");
  const consumed = {}, lag = {};
  for (const g of b.groups) {
    consumed[g.group] = (p) => p.consumed_per_s[g.group] ?? null;
    if (g.lag != null || points.some((p) => p.lag[g.group] != null)) lag[g.group] = (p) => p.lag[g.group] ?? null;
  }
  consumed["CONSUME_RATE"] = () => b.consume_rate;
  chart("chart-consumed", consumed, "msg/s");
  chart("chart-lag", lag, "messages");
}

// --- wiring ---------------------------------------------------------------------

function onBoard(b) {
  render(b);
  addPoint(pointOf(b));
  drawCharts(b);
}

async function start() {
  try {
    const r = await fetch("/api/history");
    if (r.ok) for (const p of await r.json()) addPoint(p);
  } catch (e) { /* the stream below reports the console being unreachable */ }
  const es = new EventSource("/api/events");
  const lost = document.createElement("div");
  lost.className = "down";
  lost.dataset.k = "console.connection";
  es.addEventListener("board", (ev) => {
    lost.remove();
    const b = JSON.parse(ev.data);
    if (points.length && points[points.length - 1].at === b.at) points.pop(); // history already had it
    onBoard(b);
  });
  es.onerror = () => {
    lost.textContent = "the console itself is unreachable; retrying every second";
    if (!lost.isConnected) document.body.prepend(lost);
  };
}

document.addEventListener("DOMContentLoaded", start);
