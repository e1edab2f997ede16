// The page: polls the read-only JSON API and draws with DOM nodes and SVG. Every value from the
// store is put into the page as text (textContent, attribute values): never as HTML.
"use strict";

const POLL_MS = 1000;
const SUMMARY_EVERY_MS = 5000;
const TAIL_ROWS = 200;
const KINDS = ["connection", "statement", "error", "close", "volume", "other"];
const SVG = "http://www.w3.org/2000/svg";

const view = { lastId: 0, oldestId: null, summaryAt: 0, paused: false, busy: false, epoch: 0 };

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, props, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(props || {})) node.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function ms(value) {
  if (value === null || value === undefined) return "-";
  return (Number.isInteger(value) ? String(value) : value.toFixed(1)) + " ms";
}

function clock(epochMs) {
  if (!epochMs) return "-";
  const d = new Date(epochMs);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function short(id) {
  return id ? String(id).slice(0, 8) : "-";
}

function filters() {
  const params = new URLSearchParams();
  const host = document.getElementById("f-host").value;
  const kind = document.getElementById("f-kind").value;
  const windowS = document.getElementById("f-window").value;
  if (host) params.set("host", host);
  if (kind) params.set("kind", kind);
  if (windowS !== "0") params.set("window_s", windowS);
  return params;
}

async function api(path, params) {
  const response = await fetch(path + "?" + params.toString(), { cache: "no-store" });
  if (!response.ok) throw new Error(path + " answered " + response.status);
  return response.json();
}

function replace(id, ...children) {
  document.getElementById(id).replaceChildren(...children);
}

function drawCounts(summary) {
  const cards = [el("div", { class: "card total", "data-count": "total" },
    el("span", { class: "n" }, summary.total), el("span", { class: "label" }, "logs"))];
  for (const kind of KINDS) {
    const n = summary.kinds[kind] || 0;
    if (!n && (kind === "volume" || kind === "other")) continue;
    cards.push(el("div", { class: "card kind-" + kind, "data-count": kind },
      el("span", { class: "n" }, n), el("span", { class: "label" }, kind)));
  }
  const groups = summary.errors.reduce((sum, g) => sum + g.count, 0);
  cards.push(el("div", { class: "card", "data-count": "error-groups" },
    el("span", { class: "n" }, summary.errors.length),
    el("span", { class: "label" }, "error groups (" + groups + " errors)")));
  replace("counts", ...cards);
}

function histogram(dist) {
  const width = 210, height = 54, bars = dist.histogram.length;
  const top = Math.max(1, ...dist.histogram.map((b) => b.count));
  const barW = width / Math.max(bars, 1);
  const chart = svg("svg", { viewBox: `-6 0 ${width + 18} ${height + 12}`, class: "hist", role: "img" });
  dist.histogram.forEach((bucket, i) => {
    const h = Math.round((bucket.count / top) * height);
    const label = (bucket.lt_ms === null ? "≥ last bound" : "< " + bucket.lt_ms + " ms") + ": " + bucket.count;
    chart.append(svg("rect", { x: i * barW + 1, y: height - h, width: Math.max(1, barW - 2), height: h },
      svg("title", {}, label)));
    if (bucket.lt_ms !== null && (i % 2 === 0 || bars < 8)) {
      chart.append(svg("text", { x: (i + 1) * barW, y: height + 10, "text-anchor": "middle" }, bucket.lt_ms));
    }
  });
  return chart;
}

function drawLatency(name, groups) {
  const rows = Object.entries(groups).sort((a, b) => b[1].count - a[1].count).map(([group, d]) =>
    el("tr", { "data-latency": name + ":" + group },
      el("th", {}, group),
      el("td", { "data-field": "count" }, d.count),
      el("td", { "data-field": "p50" }, ms(d.p50)),
      el("td", { "data-field": "p90" }, ms(d.p90)),
      el("td", { "data-field": "p99" }, ms(d.p99)),
      el("td", { "data-field": "max" }, ms(d.max)),
      el("td", { class: "hist-cell" }, histogram(d))));
  if (!rows.length) return replace("latency-" + name, el("p", { class: "empty" }, "no latencies yet"));
  replace("latency-" + name, el("table", { class: "latency" },
    el("thead", {}, el("tr", {}, ["", "n", "p50", "p90", "p99", "max", "histogram (ms)"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows)));
}

function drawSeries(series) {
  const width = 900, height = 150, left = 40, bottom = 18, plotH = height - bottom - 8;
  const points = series.statements.length;
  document.getElementById("series-step").textContent = points ? "(" + series.step_ms / 1000 + " s steps)" : "";
  if (!points) return replace("series", el("p", { class: "empty" }, "no statements yet"));
  const top = Math.max(1, ...series.statements, ...series.errors);
  const step = (width - left - 4) / points;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "series", role: "img" },
    svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
    svg("text", { x: left - 4, y: 12, "text-anchor": "end" }, top.toFixed(top < 10 ? 1 : 0)),
    svg("text", { x: left - 4, y: height - bottom, "text-anchor": "end" }, "0"),
    svg("text", { x: left, y: height - 2 }, clock(series.start_ms)),
    svg("text", { x: width - 4, y: height - 2, "text-anchor": "end" },
      clock(series.start_ms + points * series.step_ms)));
  const bar = (values, cls, inset) => values.forEach((v, i) => {
    if (!v) return;
    const h = Math.max(1, (v / top) * plotH);
    chart.append(svg("rect", { x: left + i * step + inset, y: height - bottom - h, width: Math.max(1, step - 2 * inset), height: h, class: cls },
      svg("title", {}, clock(series.start_ms + i * series.step_ms) + ": " + v + " " + cls + "/s")));
  });
  bar(series.statements, "statements", Math.min(1, step / 4));
  bar(series.errors, "errors", Math.min(step / 4, 4));
  const legend = el("div", { class: "legend" },
    el("span", { class: "statements" }, "statements/s"), el("span", { class: "errors" }, "errors/s"),
    el("span", {}, "peak " + top.toFixed(1) + "/s"));
  replace("series", chart, legend);
}

function drawErrors(groups) {
  if (!groups.length) return replace("errors", el("p", { class: "empty" }, "no errors"));
  replace("errors", el("table", { class: "errors" },
    el("thead", {}, el("tr", {}, ["class", "SQLSTATE", "count", "messages", "latest masked message", "last"].map((h) => el("th", {}, h)))),
    el("tbody", {}, groups.map((g) =>
      el("tr", { "data-error-group": g.error_name + "|" + (g.sqlstate || "") },
        el("th", { "data-field": "class" }, g.error_name),
        el("td", { "data-field": "sqlstate" }, g.sqlstate || "-"),
        el("td", { "data-field": "count" }, g.count),
        el("td", {}, g.messages),
        el("td", { class: "message", "data-field": "message" }, g.message || "(no message)"),
        el("td", {}, clock(g.last_ms)))))));
}

function drawClient(client) {
  if (!client) return el("p", { class: "sub" }, "client accounting: not in this process");
  const dropped = Object.values(client.dropped).reduce((a, b) => a + b, 0);
  const reasons = Object.entries(client.dropped).map(([r, n]) => r + " " + n).join(", ") || "none";
  const breaker = client.breaker || "-";
  return el("div", { class: "client", "data-client": "accounting" },
    el("p", { class: client.balanced ? "ok" : "bad" },
      "told ", el("b", { "data-field": "told" }, client.told), " = exported ",
      el("b", { "data-field": "exported" }, client.exported), " + dropped ",
      el("b", { "data-field": "dropped" }, dropped), " + pending ",
      el("b", { "data-field": "pending" }, client.pending),
      client.balanced ? "  balanced" : "  NOT balanced"),
    el("p", {}, "drops by reason: ", el("span", { "data-field": "reasons" }, reasons)),
    el("p", {}, "breaker ", el("span", { class: "badge breaker-" + breaker, "data-field": "breaker" }, breaker),
      client.live ? " (live tree)" : " (last tree)"));
}

function drawHealth(health) {
  document.getElementById("client-note").textContent = health.client_in_process
    ? "(with the client's accounting: page served in its process)" : "";
  const hosts = Object.entries(health.hosts);
  if (!hosts.length) return replace("health", el("p", { class: "empty" }, "no hosts yet"));
  replace("health", ...hosts.map(([host, h]) => el("div", { class: "host", "data-host": host },
    el("h3", {}, host || "(no Host header)"),
    el("p", {}, "stored ", el("b", { "data-field": "stored" }, h.stored_logs), " logs; accepted ",
      el("b", { "data-field": "accepted" }, h.accepted_logs === null ? "-" : h.accepted_logs), " since start"),
    h.requests.length ? el("table", { class: "requests" },
      el("thead", {}, el("tr", {}, el("th", {}, "path"), el("th", {}, "status"), el("th", {}, "requests"))),
      el("tbody", {}, h.requests.map((r) => el("tr", { class: r.status >= 200 && r.status < 300 ? "ok" : "bad" },
        el("td", {}, r.path), el("td", {}, r.status === 0 ? "dropped" : r.status), el("td", {}, r.count)))))
      : el("p", { class: "sub" }, "no requests counted by this process"),
    el("p", {}, "rejected bodies: ", el("b", { "data-field": "rejected" }, h.rejected.count)),
    h.rejected.latest.length ? el("ul", { class: "rejected" }, h.rejected.latest.map((r) =>
      el("li", {}, clock(r.received_at_ms) + " " + r.path + " " + r.status + " (" + r.size_bytes + " B): ",
        el("span", { class: "reason" }, r.reason)))) : null,
    drawClient(h.client))));
}

function detail(log) {
  return el("tr", { class: "detail" }, el("td", { colspan: 9 },
    el("pre", {}, JSON.stringify({ frontend_log: log.entry, path: log.path, client_timestamp_ms: log.timestamp_ms }, null, 2))));
}

function tailRow(log) {
  const row = el("tr", { class: "log kind-" + log.kind, "data-log-id": log.id },
    el("td", {}, clock(log.received_at_ms)), el("td", {}, log.host), el("td", { "data-field": "kind" }, log.kind),
    el("td", { title: log.session_id || "" }, short(log.session_id)),
    el("td", { title: log.sql_statement_id || "" }, short(log.sql_statement_id)),
    el("td", {}, log.statement_type || "-"), el("td", {}, log.operation_type || "-"),
    el("td", {}, ms(log.operation_latency_ms)),
    el("td", { class: "message", title: log.error_message || "" }, log.error_name ? log.error_name + ": " + (log.error_message || "") : "-"));
  row.addEventListener("click", () => {
    const next = row.nextElementSibling;
    if (next && next.classList.contains("detail")) next.remove(); else row.after(detail(log));
  });
  return row;
}

function addTail(logs, atTop) {
  const body = document.querySelector("#tail tbody");
  const rows = logs.map(tailRow);
  if (atTop) body.prepend(...rows); else body.append(...rows);
  const all = body.querySelectorAll("tr.log");
  for (let i = TAIL_ROWS; i < all.length && atTop; i++) {
    const next = all[i].nextElementSibling;
    if (next && next.classList.contains("detail")) next.remove();
    all[i].remove();
  }
}

function drawHosts(hosts) {
  const select = document.getElementById("f-host");
  const chosen = select.value;
  const names = Object.keys(hosts);
  const options = [el("option", { value: "" }, "all hosts")].concat(names.map((h) =>
    el("option", { value: h }, h + " (" + hosts[h] + ")")));
  select.replaceChildren(...options);
  select.value = names.includes(chosen) ? chosen : "";
}

async function refreshSummary(epoch) {
  const params = filters();
  const [summary, health] = await Promise.all([api("/api/summary", params), api("/api/health", params)]);
  if (epoch !== view.epoch) return;
  drawHosts(summary.hosts);
  drawCounts(summary);
  drawSeries(summary.series);
  drawLatency("statement_type", summary.latency.statement_type);
  drawLatency("operation_type", summary.latency.operation_type);
  drawErrors(summary.errors);
  drawHealth(health);
  view.summaryAt = Date.now();
  document.body.dataset.summaryLastId = String(summary.last_id);
}

async function tick() {
  if (view.busy || view.paused) return;
  view.busy = true;
  const epoch = view.epoch;
  try {
    const params = filters();
    params.set("since", String(view.lastId));
    params.set("limit", view.lastId ? "500" : "100");
    const page = await api("/api/logs", params);
    if (epoch !== view.epoch) return;
    if (page.logs.length) {
      if (!view.lastId) view.oldestId = page.more_before;
      addTail(page.logs, true);
      view.lastId = page.last_id;
    }
    if (page.logs.length || Date.now() - view.summaryAt > SUMMARY_EVERY_MS) await refreshSummary(epoch);
    document.body.dataset.lastId = String(view.lastId);
    setStatus("live: updated " + new Date().toLocaleTimeString([], { hour12: false }), "live");
  } catch (error) {
    setStatus("cannot reach the endpoint (" + error.message + "); retrying", "down");
  } finally {
    view.busy = false;
  }
}

async function older() {
  if (!view.oldestId) return;
  const params = filters();
  params.set("before", String(view.oldestId));
  params.set("limit", "100");
  const page = await api("/api/logs", params);
  addTail(page.logs, false);
  view.oldestId = page.more_before;
}

function setStatus(text, state) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.dataset.state = state;
}

function restart() {
  view.epoch += 1;
  view.lastId = 0;
  view.oldestId = null;
  view.summaryAt = 0;
  view.busy = false;
  document.querySelector("#tail tbody").replaceChildren();
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["f-host", "f-kind", "f-window"]) document.getElementById(id).addEventListener("change", restart);
  document.getElementById("pause").addEventListener("click", (event) => {
    view.paused = !view.paused;
    event.target.textContent = view.paused ? "resume" : "pause";
    setStatus(view.paused ? "paused" : "resuming…", view.paused ? "paused" : "live");
  });
  document.getElementById("older").addEventListener("click", () => older().catch(() => {}));
  tick();
  setInterval(tick, POLL_MS);
});
