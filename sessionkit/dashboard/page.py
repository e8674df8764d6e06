"""The dashboard page: one HTML document with inline CSS and JS (no build step, no CDN, works
offline) that polls ``snapshot.json`` next to it once a second and draws it, every value with
``textContent`` (never markup).

The token comes in the URL's fragment (``.../#token=<token>``), which browsers never send: the
script keeps it in ``sessionStorage`` (this tab only), sends it as ``Authorization: Bearer``
and drops it from the address bar and the history."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sessionkit dashboard</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d232a; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  .muted { color: #66707a; font-size: .85rem; }
  table { border-collapse: collapse; margin-top: 1rem; min-width: 60rem; }
  th, td { border-bottom: 1px solid #d9dee3; padding: .35rem .6rem; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  thead th { background: #f2f4f6; font-weight: 600; }
  tr.down td { color: #9aa3ab; text-decoration: line-through; }
  tr.down td.state { color: #b3261e; text-decoration: none; font-weight: 600; }
  td.miss { color: #b3261e; font-weight: 600; }
  tfoot td { font-weight: 600; }
  button { font: inherit; padding: .1rem .6rem; cursor: pointer; white-space: nowrap; }
  #error, #action { color: #b3261e; }
</style>
</head>
<body>
<h1>sessionkit dashboard</h1>
<div class="muted">Counters since each instance started. Lookups: <b>hit</b> the session was
found, <b>new</b> no cookie (a load balancer's health checks count here),
<b>not_found</b> the cookie's session is unknown here (expired or lost),
<b>affinity_miss</b> the cookie names another instance (the balancer did not route it home).
Latency and cookie sizes are bucket upper bounds. Updated <span id="updated">never</span>.
<span id="error"></span> <span id="action"></span></div>
<table>
<thead><tr>
  <th>instance</th><th>state</th><th>mode</th><th>store</th><th>live sessions</th>
  <th>hit</th><th>new</th><th>not_found</th><th>affinity_miss</th><th>near-cache hit rate</th>
  <th>store p50 / p90 / p99 ms</th><th>cookie p50 / p90 / p99 bytes</th><th></th>
</tr></thead>
<tbody id="instances"></tbody>
<tfoot><tr id="totals"></tr></tfoot>
</table>
<script>
"use strict";
const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
const stored = "sessionkit-dashboard-token " + base;
const given = new URLSearchParams(location.hash.slice(1)).get("token");
if (given) {
  sessionStorage.setItem(stored, given);
  history.replaceState(null, "", location.pathname);  // out of the address bar and history
}
const token = sessionStorage.getItem(stored);
const auth = token ? {"Authorization": "Bearer " + token} : {};
const LOOKUPS = ["hit", "new", "not_found", "affinity_miss"];

function cell(row, text, cls, field) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (field) td.dataset.field = field;
  row.appendChild(td);
  return td;
}
function number(value, digits) {
  if (value === null || value === undefined) return "n/a";
  if (typeof value === "string") return value;
  return digits === undefined ? String(value) : value.toFixed(digits);
}
function triple(q) {
  return q && q.count ? [q.p50, q.p90, q.p99].map(v => number(v)).join(" / ") : "n/a";
}
function rate(near) {
  return near && near.hit_rate !== null && near.hit_rate !== undefined
    ? (100 * near.hit_rate).toFixed(1) + " %" : "n/a";
}
async function stop(instance, button) {
  button.disabled = true;
  const response = await fetch(base + "stop/" + encodeURIComponent(instance), {
    method: "POST", headers: Object.assign({"X-Sessionkit-Dashboard": "1"}, auth)});
  document.getElementById("action").textContent =
    response.ok ? "" : "stopping " + instance + " failed: " + response.status;
  refresh();
}
function draw(data) {
  const body = document.getElementById("instances");
  body.replaceChildren();
  for (const item of data.instances) {
    const row = document.createElement("tr");
    row.dataset.instance = item.instance;
    if (!item.up) row.className = "down";
    cell(row, item.instance);
    cell(row, item.up ? "up" : "stopped", "state", "state");
    cell(row, item.mode || "");
    cell(row, item.store || "");
    cell(row, number(item.live_sessions), "", "live_sessions");
    for (const name of LOOKUPS) {
      const n = (item.lookups || {})[name] || 0;
      cell(row, String(n), name === "affinity_miss" && n ? "miss" : "", name);
    }
    cell(row, rate(item.near_cache), "", "near_cache_hit_rate");
    cell(row, triple(item.store_latency_ms), "", "store_latency_ms");
    cell(row, triple(item.cookie_bytes), "", "cookie_bytes");
    const actions = cell(row, "");
    if (data.can_stop && item.up) {
      const button = document.createElement("button");
      button.textContent = "stop instance " + item.instance;
      button.dataset.stop = item.instance;
      button.addEventListener("click", () => stop(item.instance, button));
      actions.appendChild(button);
    }
    body.appendChild(row);
  }
  const totals = document.getElementById("totals");
  totals.replaceChildren();
  cell(totals, "all instances");
  for (let i = 0; i < 4; i++) cell(totals, "");
  for (const name of LOOKUPS) cell(totals, String(data.lookups[name] || 0), "", "total_" + name);
  for (let i = 0; i < 4; i++) cell(totals, "");
  document.getElementById("updated").textContent = new Date().toLocaleTimeString();
}
async function refresh() {
  try {
    const response = await fetch(base + "snapshot.json", {headers: auth, cache: "no-store"});
    if (response.status === 401) throw new Error("this dashboard wants its token: open it as "
                                                 + base + "#token=<token>");
    if (!response.ok) throw new Error("snapshot.json answered " + response.status);
    draw(await response.json());
    document.getElementById("error").textContent = "";
    document.body.dataset.ready = "1";
  } catch (error) {
    document.getElementById("error").textContent = String(error.message || error);
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
"""
