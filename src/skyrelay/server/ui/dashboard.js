// The skyrelay dashboard: polls GET /admin/stats with the key given at sign-in and draws what it says.
// No framework and no build step; the one chart library is uPlot (vendor/). Every value is written with
// textContent, never parsed as HTML.
"use strict";

const KEY = "skyrelay.key";  // sessionStorage: the key lives as long as this tab
const POLL_MS = 2000;
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const $ = (id) => document.getElementById(id);

let timer = null;
const charts = {};  // element id -> {plot, names}: redrawn with new data, rebuilt when the series change

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const cell of cells) {
    const td = cell instanceof Node ? el("td") : el("td", cell);
    if (cell instanceof Node) td.appendChild(cell);
    if (typeof cell === "number") td.className = "num";
    tr.appendChild(td);
  }
  return tr;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows);
}

function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%"; }
function num(x, digits = 2) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }
function usd(x) { return x === null || x === undefined ? "–" : "$" + Number(x).toFixed(x < 1 ? 4 : 2); }

function bar(share, mark, cls) {
  const outer = el("div", null, "bar");
  const inner = el("span", null, cls || "");
  inner.style.width = Math.max(0, Math.min(1, share || 0)) * 100 + "%";
  outer.appendChild(inner);
  if (mark !== undefined && mark !== null) {
    const line = el("i");
    line.style.left = Math.min(1, mark) * 100 + "%";
    outer.appendChild(line);
  }
  return outer;
}

class Refused extends Error {}  // the key was refused: back to the sign-in form

// --- signing in and out --------------------------------------------------------------------------------------

async function signIn(key) {
  const resp = await fetch("/admin/stats", { headers: { authorization: "Bearer " + key }, cache: "no-store" });
  if (resp.status === 401 || resp.status === 403) {
    const body = await resp.json().catch(() => ({}));
    throw new Refused((body.error && body.error.message) || "refused (" + resp.status + ")");
  }
  if (!resp.ok) throw new Error("the gateway answered " + resp.status);
  return resp.json();
}

function showDashboard(signedIn) {
  $("login").hidden = signedIn;
  $("dashboard").hidden = !signedIn;
  $("logout").hidden = !signedIn;
  if (!signedIn) $("status").textContent = "not signed in";
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  clearTimeout(timer);
  showDashboard(false);
  $("login-error").textContent = message || "";
}

async function poll() {
  const key = sessionStorage.getItem(KEY);
  if (!key) return signOut();
  try {
    render(await signIn(key));
    $("status").classList.remove("error");
  } catch (err) {
    if (err instanceof Refused) return signOut(err.message);
    $("status").textContent = "cannot reach the gateway: " + err.message;
    $("status").classList.add("error");
  }
  timer = setTimeout(poll, POLL_MS);
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("key").value.trim();
  $("login-error").textContent = "";
  try {
    const stats = await signIn(key);
    sessionStorage.setItem(KEY, key);
    $("key").value = "";
    showDashboard(true);
    render(stats);
    timer = setTimeout(poll, POLL_MS);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});
$("logout").addEventListener("click", () => signOut());

// --- panels --------------------------------------------------------------------------------------------------

function render(s) {
  $("status").textContent = "updated " + new Date(s.time * 1000).toLocaleTimeString() + " · up " +
    Math.round(s.uptime_s) + " s · limits " + (s.state ? s.state.backend + (s.state.shared ? "" : " (local fallback)") : "") +
    (s.workers.count > 1 ? " · workers " + s.workers.reporting + " of " + s.workers.count : "");
  renderTraffic(s);
  renderShare(s);
  renderHealth(s);
  renderQuota(s);
  renderConcentration(s);
  renderCommitments(s);
  renderSpend(s);
  renderErrors(s);
}

function renderTraffic(s) {
  const rps = s.deployments.reduce((sum, d) => sum + d.requests_per_s, 0);
  const eps = s.deployments.reduce((sum, d) => sum + d.errors_per_s, 0);
  $("total-rps").textContent = num(rps);
  $("total-eps").textContent = num(eps);
  $("total-served").textContent = s.model_groups.reduce(
    (sum, g) => sum + g.tiers.reduce((n, t) => n + t.served, 0), 0);
  const series = s.series;
  const names = Object.keys(series.deployments);
  const length = names.length ? series.deployments[names[0]].ok.length : 0;
  const xs = Array.from({ length }, (_, i) => series.start + i * series.step_s);
  const rates = names.map((n) => {
    const d = series.deployments[n];
    return d.ok.map((ok, i) => (ok + d.failed[i]) / series.step_s);
  });
  plot("rps-chart", names, [xs, ...rates], "req/s", (v) => v.toFixed(2) + " req/s", (max) => Math.max(1, max * 1.1));
  // Each vendor's share of the attempts served, per bucket (a gap where nothing was served).
  const vendorOf = Object.fromEntries(s.deployments.map((d) => [d.name, d.vendor]));
  const vendors = [...new Set(s.deployments.map((d) => d.vendor))].sort();
  const served = vendors.map((v) => xs.map((_, i) => names.filter((n) => vendorOf[n] === v)
    .reduce((sum, n) => sum + series.deployments[n].ok[i], 0)));
  const totals = xs.map((_, i) => served.reduce((sum, row) => sum + row[i], 0));
  const shares = served.map((row) => row.map((n, i) => (totals[i] ? (100 * n) / totals[i] : null)));
  plot("share-chart", vendors, [xs, ...shares], "% served", (v) => v.toFixed(0) + "%", () => 100);
}

function plot(id, names, data, unit, format, top) {
  const target = $(id);
  const known = charts[id];
  if (known && known.names === names.join(",")) return known.plot.setData(data);
  if (known) known.plot.destroy();
  const plot = new uPlot({
    width: Math.max(300, target.clientWidth - 10), height: 200,
    series: [{}, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 2,
                                           value: (u, v) => (v === null ? "–" : format(v)) }))],
    axes: [{}, { label: unit, size: 50 }],
    scales: { y: { range: (u, min, max) => [0, top(max)] } },
  }, data, target);
  charts[id] = { plot, names: names.join(",") };
}

function renderShare(s) {
  const rows = [];
  for (const vendor of s.vendors) {
    rows.push(row([vendor.vendor, num(vendor.requests_per_s), bar(vendor.share)], "vendor"));
    for (const d of s.deployments.filter((d) => d.vendor === vendor.vendor)) {
      const r = row(["  " + d.name, num(d.requests_per_s), bar(d.share)]);
      r.dataset.deployment = d.name;
      r.lastChild.title = pct(d.share);
      rows.push(r);
    }
  }
  fill("share", rows);
}

function renderHealth(s) {
  fill("health", s.deployments.map((d) => {
    const h = d.health;
    const badge = el("span", h.breaker.replace("_", "-"), "badge " + h.breaker);
    const out = h.workers.filter((w) => !w.available).map((w) => w.worker);  // which workers keep it out
    const on = out.length && out.length < h.workers.length ? ", worker " + out.join(", ") : "";
    const why = h.available ? "" : h.reason + (h.unavailable_s ? " (" + num(h.unavailable_s, 0) + " s" + on + ")" :
                                               on ? " (" + on.slice(2) + ")" : "");
    const r = row([d.name, badge, why, h.consecutive_failures, h.ejections,
                   d.latency_ms === null ? "–" : num(d.latency_ms, 0) + " ms", d.in_flight]);
    r.dataset.deployment = d.name;
    r.dataset.breaker = h.breaker;
    r.dataset.available = String(h.available);
    return r;
  }));
}

function renderQuota(s) {
  const rows = [];
  for (const d of s.deployments) {
    for (const [kind, q] of Object.entries(d.quota.limits)) {
      const left = Math.max(0, 1 - q.used / q.limit);
      rows.push(row([d.name, kind + " " + q.limit, q.used, bar(left, null, left < 0.1 ? "low" : "")]));
    }
  }
  if (!rows.length) rows.push(row(["no deployment has rpm, tpm or max_concurrency", "", "", ""]));
  fill("quota", rows);
  fill("tiers", s.model_groups.map((g) => {
    const stack = el("div", null, "stack");
    g.tiers.forEach((t, i) => {
      const part = el("span");
      part.style.width = t.share * 100 + "%";
      part.style.background = COLORS[i % COLORS.length];
      part.title = "tier " + t.tier + ": " + pct(t.share);
      stack.appendChild(part);
    });
    return row([g.name + " (" + g.tiers.length + " tier" + (g.tiers.length > 1 ? "s" : "") + ")", stack,
                pct(g.spillover_share)]);
  }));
}

function renderConcentration(s) {
  const box = $("concentration");
  const capped = s.model_groups.filter((g) => g.concentration);
  if (!capped.length) return box.replaceChildren(el("p", "No model group has a concentration cap.", "muted"));
  const nodes = [];
  for (const g of capped) {
    const c = g.concentration;
    nodes.push(el("h3", g.name + ": cap " + pct(c.max_share) + " of " + c.measure + " over " + c.window_s +
                  " s · breaches " + c.breaches + " · refusals " + c.refusals));
    for (const [vendor, share] of Object.entries(c.vendors)) {
      const line = el("div", null, "row");
      line.append(el("span", vendor), bar(share, c.max_share, share > c.max_share ? "over" : ""), el("span", pct(share)));
      nodes.push(line);
    }
  }
  box.replaceChildren(...nodes);
}

function renderCommitments(s) {
  const box = $("commitments");
  const list = (s.commitments && s.commitments.commitments) || [];
  if (!list.length) return box.replaceChildren(el("p", "No commitments configured.", "muted"));
  const nodes = [];
  for (const c of list) {
    const consumed = c.consumed_usd;
    const total = c.amount_usd;
    const share = consumed !== null && total ? consumed / total : null;
    const line = el("div", null, "row");
    const label = share === null ? "term " + pct(c.elapsed) + " elapsed" : usd(consumed) + " of " + usd(total);
    line.append(el("span", c.name + " (" + c.vendor + ", " + c.kind + ")"), bar(share === null ? 0 : share, c.elapsed),
                el("span", label));
    line.title = c.start + " to " + c.end + "; the mark is the share of the term elapsed";
    nodes.push(line);
  }
  if (s.commitments.source === "config") {
    nodes.push(el("p", "Consumption comes from the ledger; the mark shows the term elapsed.", "muted"));
  }
  box.replaceChildren(...nodes);
}

function renderSpend(s) {
  const box = $("spend");
  const teams = (s.spend && s.spend.teams) || [];
  if (!teams.length) return box.replaceChildren(el("p", "No priced traffic yet.", "muted"));
  const vendors = [...new Set(teams.flatMap((t) => t.model_groups.flatMap((g) => Object.keys(g.vendors))))].sort();
  const top = Math.max(...teams.flatMap((t) => t.model_groups.map((g) => g.usd)), 1e-12);
  const nodes = [];
  const legend = el("div", null, "legend");
  vendors.forEach((v, i) => {
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = COLORS[i % COLORS.length];
    item.append(swatch, document.createTextNode(v));
    legend.appendChild(item);
  });
  nodes.push(legend);
  for (const t of teams) {
    nodes.push(el("h3", t.team + " · " + usd(t.usd)));
    for (const g of t.model_groups) {
      const stack = el("div", null, "stack");
      vendors.forEach((v, i) => {
        if (!g.vendors[v]) return;
        const part = el("span");
        part.style.width = (g.vendors[v] / top) * 100 + "%";
        part.style.background = COLORS[i % COLORS.length];
        part.title = v + ": " + usd(g.vendors[v]);
        stack.appendChild(part);
      });
      const line = el("div", null, "row");
      line.append(el("span", g.model_group), stack, el("span", usd(g.usd)));
      nodes.push(line);
    }
  }
  box.replaceChildren(...nodes);
}

function renderErrors(s) {
  const rows = s.errors.slice(0, 20).map((e) => row([new Date(e.time * 1000).toLocaleTimeString(), e.request_id,
    e.model_group || "–", e.deployment || "–", e.error, e.status]));
  if (!rows.length) rows.push(row(["none", "", "", "", "", ""]));
  fill("errors", rows);
}

// A key kept from earlier in this tab signs in again on reload.
if (sessionStorage.getItem(KEY)) {
  showDashboard(true);
  poll();
}
