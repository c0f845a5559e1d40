import { lineChart } from "./charts.js";
import { api, el, fmt, poll, status } from "./common.js";

let rows = [];
let sortKey = "rank";
let ascending = true;
let selected = null;

const numeric = new Set(["rank", "points", "tok_s", "nodes", "jobs", "tokens"]);

function sorted() {
  const direction = ascending ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = a[sortKey], y = b[sortKey];
    if (x === y) return a.rank - b.rank;
    if (x === null) return 1;
    if (y === null) return -1;
    return (numeric.has(sortKey) ? x - y : String(x).localeCompare(String(y))) * direction;
  });
}

function draw() {
  const body = document.querySelector("#board tbody");
  body.replaceChildren(...sorted().map((row) => {
    const open = () => showProvider(row.provider);
    const line = el("tr", {
      class: "clickable" + (row.provider === selected ? " selected" : ""), tabindex: 0,
      "data-provider": row.provider, "aria-label": `Rank ${row.rank}, ${row.provider}: open its nodes`,
      onclick: open, onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); } },
    },
      el("td", { class: "num" }, row.rank),
      el("td", { title: row.provider }, el("code", {}, fmt.wallet(row.provider))),
      el("td", {}, row.tier),
      el("td", { class: "num", "data-field": "points" }, fmt.n(row.points)),
      el("td", { class: "num" }, row.tok_s === null ? "—" : fmt.n(row.tok_s)),
      el("td", { class: "num" }, fmt.int(row.nodes)),
      el("td", { class: "num" }, fmt.int(row.jobs)),
      el("td", { class: "num" }, fmt.int(row.tokens)),
    );
    return line;
  }));
  for (const header of document.querySelectorAll("#board th")) {
    const key = header.querySelector("button").dataset.key;
    if (key === sortKey) header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    else header.removeAttribute("aria-sort");
  }
}

for (const button of document.querySelectorAll("#board th button")) {
  button.addEventListener("click", () => {
    const key = button.dataset.key;
    if (key === sortKey) ascending = !ascending;
    else { sortKey = key; ascending = key === "rank" || key === "provider" || key === "tier"; }
    draw();
  });
}

function termsTable(node) {
  const head = el("tr", {}, ...["Day", "Uptime", "Hardware", "Model value", "Trust", "Penalties", "Score", "Weighted"].map((name) => el("th", { scope: "col" }, name)));
  const lines = node.days.map((day) => el("tr", {},
    el("td", {}, day.day), el("td", { class: "num" }, fmt.pct(day.terms.uptime)),
    el("td", { class: "num" }, fmt.n(day.terms.hardware)), el("td", { class: "num" }, fmt.n(day.terms.model_value)),
    el("td", { class: "num" }, fmt.pct(day.terms.trust)), el("td", { class: "num" }, fmt.n(day.terms.penalties)),
    el("td", { class: "num" }, fmt.n(day.score)), el("td", { class: "num" }, fmt.n(day.weighted_score)),
  ));
  return el("div", { class: "table-wrap" }, el("table", { class: "terms-table" }, el("thead", {}, head), el("tbody", {}, lines)));
}

async function showProvider(wallet) {
  selected = wallet;
  draw();
  const panel = document.getElementById("provider-panel");
  const detail = document.getElementById("provider-detail");
  panel.hidden = false;
  const heading = document.getElementById("provider-heading");
  heading.textContent = `Provider ${fmt.wallet(wallet)}`;
  heading.focus();
  detail.replaceChildren(el("p", { class: "status" }, "Loading…"));
  try {
    const provider = await api(`/v1/providers/${encodeURIComponent(wallet)}?days=30`);
    const parts = [el("p", {}, `${provider.tier} · ${fmt.n(provider.points)} points over 30 days · `, el("code", {}, provider.provider))];
    for (const node of provider.nodes) {
      parts.push(el("section", { class: "node-detail", "data-node": node.node_id },
        el("h3", {}, `Node ${fmt.wallet(node.node_id)}${node.removed ? " (removed)" : ""}`),
        el("p", { class: "muted" }, `${fmt.n(node.points)} points · ${fmt.int(node.jobs)} jobs · ${fmt.int(node.tokens)} tokens · ${node.measured_tok_s === null ? "speed not measured yet" : fmt.n(node.measured_tok_s) + " tok/s"}`),
        node.days.length ? termsTable(node) : el("p", { class: "muted" }, "No scored days yet."),
      ));
    }
    if (!provider.nodes.length) parts.push(el("p", { class: "muted" }, "No nodes to show."));
    detail.replaceChildren(...parts);
  } catch (error) {
    detail.replaceChildren(el("p", { class: "status error" }, `Could not load this provider: ${error.message}`));
  }
}

poll(async () => {
  try {
    const board = await api("/v1/leaderboard?days=30");
    rows = board.data;
    draw();
    status("board-status", rows.length
      ? `${rows.length} provider${rows.length === 1 ? "" : "s"} over the last ${board.days} days · updated ${new Date().toLocaleTimeString("en-US")}`
      : "No provider has scored yet — run a node and be the first.");
  } catch (error) {
    status("board-status", `Could not load the leaderboard: ${error.message}`, { error: true });
  }
}, 15000);

poll(async () => {
  const chart = document.getElementById("usage-chart");
  try {
    const usage = await api("/v1/network/usage?days=30");
    lineChart(chart, usage.data.map((day) => ({ label: day.day, value: day.tokens })), {
      title: "Tokens served per day, last 30 days", empty: "No tokens served yet.",
    });
  } catch (error) {
    chart.textContent = `Could not load the chart: ${error.message}`;
  }
}, 60000);
