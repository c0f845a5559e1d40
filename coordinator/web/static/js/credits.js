import { api, copy, el, fmt, poll, site, status } from "./common.js";

let pricing = null;

async function balance() {
  try {
    pricing = pricing || (await api("/v1/network/pricing"));
    const account = await api("/v1/account");
    document.getElementById("balance").textContent = fmt.credits(account.available.credits);
    document.getElementById("balance-usd").textContent = `≈ ${fmt.usd(account.available.credits * pricing.usd_per_credit)}`;
  } catch (error) {
    document.getElementById("balance").textContent = "unavailable";
  }
}

// --- top-ups ---------------------------------------------------------------------------------
let stopWatching = null;

function showInvoice(invoice) {
  document.getElementById("invoice").hidden = false;
  document.getElementById("invoice-amount").textContent = invoice.amount_usdc;
  document.getElementById("invoice-credits").textContent = fmt.n(invoice.credits / 1e6);
  document.getElementById("invoice-link").href = invoice.payment_url;
  document.getElementById("invoice-qr").src = `/v1/account/topups/${invoice.id}/qr.svg`;
  document.getElementById("invoice-expires").textContent = fmt.date(invoice.expires_at);
  const state = document.getElementById("invoice-state");
  state.textContent = invoice.status + (invoice.last_error ? ` — ${invoice.last_error}` : "");
  state.className = `pill ${invoice.status}`;
}

const topupForm = document.getElementById("topup-form");
if (!site.topups) {
  topupForm.querySelectorAll("input, button").forEach((control) => { control.disabled = true; });
  status("topup-status", "Top-ups are not enabled on this coordinator yet.");
}
topupForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = topupForm.querySelector("button");
  button.disabled = true;
  status("topup-status", "Creating the invoice…");
  try {
    const invoice = await api("/v1/account/topups", { method: "POST", body: { amount_usdc: String(new FormData(topupForm).get("amount_usdc")) } });
    showInvoice(invoice);
    status("topup-status", "Invoice ready. It is credited automatically once the payment is final on Solana.");
    if (stopWatching) stopWatching();
    stopWatching = poll(async () => {
      try {
        const current = await api(`/v1/account/topups/${invoice.id}`);
        showInvoice(current);
        if (current.status !== "pending") { stopWatching(); balance(); }
      } catch (error) {
        status("topup-status", `Could not check the invoice: ${error.message}`, { error: true });
      }
    }, 4000);
  } catch (error) {
    status("topup-status", `Could not create the invoice: ${error.message}`, { error: true });
  } finally {
    button.disabled = false;
  }
});

// --- API keys --------------------------------------------------------------------------------
async function keys() {
  try {
    const list = await api("/v1/account/keys");
    document.querySelector("#keys tbody").replaceChildren(...list.data.map((key) => el("tr", { "data-key": key.id },
      el("td", {}, key.name), el("td", {}, el("code", {}, `${key.prefix}…`)),
      el("td", { class: "num" }, fmt.credits(key.spent.credits)),
      el("td", { class: "num" }, key.spend_limit ? fmt.credits(key.spend_limit.credits) : "none"),
      el("td", {}, key.last_used_at ? fmt.date(key.last_used_at) : "never"),
      el("td", {}, el("span", { class: `pill ${key.revoked ? "revoked" : "online"}` }, key.revoked ? "revoked" : "active")),
      el("td", {}, key.revoked ? "" : el("button", {
        type: "button", class: "small danger", "aria-label": `Revoke key ${key.name}`,
        onclick: async (event) => {
          if (!confirm(`Revoke the key "${key.name}"? Apps using it stop working.`)) return;
          event.target.disabled = true;
          try { await api(`/v1/account/keys/${key.id}`, { method: "DELETE" }); status("key-status", `Key "${key.name}" revoked.`); }
          catch (error) { status("key-status", `Could not revoke: ${error.message}`, { error: true }); }
          keys();
        },
      }, "Revoke")),
    )));
  } catch (error) {
    status("key-status", `Could not load your keys: ${error.message}`, { error: true });
  }
}

const keyForm = document.getElementById("key-form");
keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(keyForm);
  const body = { name: String(data.get("name")) };
  if (data.get("spend_limit_credits")) body.spend_limit_credits = String(data.get("spend_limit_credits"));
  const button = keyForm.querySelector("button");
  button.disabled = true;
  try {
    const key = await api("/v1/account/keys", { method: "POST", body });
    document.getElementById("new-key").hidden = false;
    document.getElementById("new-key-secret").textContent = key.secret;
    status("key-status", `Key "${key.name}" minted.`);
    keyForm.reset();
    keys();
  } catch (error) {
    status("key-status", `Could not mint a key: ${error.message}`, { error: true });
  } finally {
    button.disabled = false;
  }
});
document.getElementById("copy-key").addEventListener("click", (event) => copy(document.getElementById("new-key-secret").textContent, event.target));

poll(balance, 10000);
keys();
