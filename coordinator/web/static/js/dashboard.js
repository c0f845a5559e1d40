import { lineChart } from "./charts.js";
import { api, el, fmt, poll, site, status } from "./common.js";
import { onWallets, signInWith } from "./wallet.js";

async function linkWallet(wallet, button) {
  button.disabled = true;
  try {
    const body = await signInWith(wallet, (address) => api("/v1/auth/siws/nonce", { method: "POST", body: { address } }));
    account = await api("/v1/account/wallet", { method: "POST", body });
    identities();
  } catch (error) {
    button.disabled = false;
    document.getElementById("identities").append(el("span", { class: "error", role: "alert" }, ` Could not link: ${error.message}`));
  }
}

let account = null;
let wallets = [];

function pill(state) { return el("span", { class: `pill ${state}` }, state); }

async function nodes() {
  try {
    const [list, points] = await Promise.all([
      api("/v1/account/nodes"),
      account && account.wallet
        ? api(`/v1/providers/${encodeURIComponent(account.wallet)}?days=30`).catch(() => null)
        : Promise.resolve(null),
    ]);
    const pointsByNode = new Map((points?.nodes || []).map((node) => [node.node_id, node.points]));
    document.getElementById("points").textContent = points ? fmt.n(points.points) : "—";
    const rows = list.data.map((node) => el("tr", { "data-node": node.node_id },
      el("td", { title: node.node_id }, el("code", {}, fmt.wallet(node.node_id))),
      el("td", {}, pill(node.status)),
      el("td", {}, node.models.join(", ")),
      el("td", {}, node.engine),
      el("td", {}, [node.chip, node.memory_gb ? `${node.memory_gb} GB` : null].filter(Boolean).join(" · ") || "—"),
      el("td", { class: "num" }, node.measured_tok_s === null ? "—" : fmt.n(node.measured_tok_s)),
      el("td", { class: "num" }, fmt.pct(node.uptime)),
      el("td", {}, `${fmt.pct(node.trust.fraction)} (day ${Math.floor(node.trust.days)} of ${fmt.int(node.trust.ramp_days)})`),
      el("td", { class: "num" }, pointsByNode.has(node.node_id) ? fmt.n(pointsByNode.get(node.node_id)) : "—"),
    ));
    document.querySelector("#nodes tbody").replaceChildren(...rows);
    status("nodes-status", rows.length ? "" : "No nodes yet. Run one from the Run a node page.");
  } catch (error) {
    status("nodes-status", `Could not load your nodes: ${error.message}`, { error: true });
  }
}

async function money() {
  try {
    account = await api("/v1/account");
    document.getElementById("balance").textContent = fmt.credits(account.available.credits);
    document.getElementById("earned").textContent = fmt.credits(account.earnings.credits);
    document.getElementById("spent").textContent = fmt.credits(account.spend.credits);
    identities();
    const [ledger, usage, activity] = await Promise.all([
      api("/v1/account/ledger?limit=50"), api("/v1/account/usage"), api("/v1/account/activity?days=30"),
    ]);
    lineChart(document.getElementById("earnings-chart"),
      activity.data.map((day) => ({ label: day.day, value: day.earned.credits })),
      { title: "Credits earned per day, last 30 days" });
    lineChart(document.getElementById("spending-chart"),
      activity.data.map((day) => ({ label: day.day, value: day.spent.credits })),
      { title: "Credits spent per day, last 30 days" });
    document.querySelector("#ledger tbody").replaceChildren(...ledger.data.map((entry) => el("tr", {},
      el("td", {}, fmt.date(entry.created_at)), el("td", {}, entry.kind), el("td", {}, entry.model || "—"),
      el("td", { class: "num" }, entry.prompt_tokens + entry.completion_tokens ? fmt.int(entry.prompt_tokens + entry.completion_tokens) : "—"),
      el("td", { class: "num" }, fmt.credits(entry.amount.credits)),
    )));
    document.querySelector("#usage tbody").replaceChildren(...usage.by_key.map((key) => el("tr", { "data-key": key.key_id ?? "" },
      el("td", {}, key.name ? `${key.name} (${key.prefix}…)` : "—"), el("td", { class: "num", "data-field": "calls" }, fmt.int(key.calls)),
      el("td", { class: "num" }, fmt.int(key.prompt_tokens)), el("td", { class: "num" }, fmt.int(key.completion_tokens)),
      el("td", { class: "num" }, fmt.credits(key.spent.credits)),
    )));
    status("usage-status", `${fmt.int(usage.total.calls)} call${usage.total.calls === 1 ? "" : "s"} · ${fmt.int(usage.total.prompt_tokens + usage.total.completion_tokens)} tokens · updated ${new Date().toLocaleTimeString("en-US")}`);
  } catch (error) {
    status("usage-status", `Could not load your account: ${error.message}`, { error: true });
  }
}

function identities() {
  const parts = [];
  if (account.wallet) parts.push(el("span", { id: "wallet-linked" }, "Solana wallet ", el("code", {}, account.wallet)));
  else {
    parts.push(el("span", {}, "No wallet linked. "));
    for (const wallet of wallets) {
      const button = el("button", { type: "button", class: "ghost small", "data-wallet": wallet.name }, `Link ${wallet.name}`);
      button.addEventListener("click", () => linkWallet(wallet, button));
      parts.push(button, " ");
    }
  }
  parts.push(" · ");
  if (account.oidc_linked) parts.push(el("span", { id: "oidc-linked" }, `${site.oidc || "OpenID"} linked${account.email ? ` (${account.email})` : ""}`));
  else if (site.oidc) parts.push(el("a", { class: "button ghost small", id: "link-oidc", href: "/auth/oidc/start?link=1&next=/dashboard" }, `Link ${site.oidc}`));
  else parts.push("No other sign-in configured.");
  document.getElementById("identities").replaceChildren(...parts);
}

onWallets((found) => { wallets = found; if (account) identities(); });
poll(async () => { await money(); await nodes(); }, 5000);
