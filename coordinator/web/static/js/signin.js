import { api, el, site, status } from "./common.js";
import { onWallets, signInWith } from "./wallet.js";

const params = new URLSearchParams(location.search);
/** A path on this site, else /dashboard: the same rule as coordinator/accounts/next_path.py. */
function safeNext(target) {
  if (!target || target.length > 2048) return "/dashboard";
  let decoded;
  try { decoded = decodeURIComponent(target); } catch { return "/dashboard"; }
  for (const text of [target, decoded]) {
    if (/[\x00-\x1f\x7f\\]/.test(text)) return "/dashboard";
    if (!text.startsWith("/") || text.startsWith("//")) return "/dashboard";
    if (new URL(text, location.origin).origin !== location.origin) return "/dashboard";
  }
  return target;
}
const next = safeNext(params.get("next"));

if (params.get("error")) {
  const box = document.getElementById("signin-error");
  box.hidden = false;
  box.textContent = params.get("error");
}

if (site.oidc) {
  document.getElementById("oidc").hidden = false;
  const button = document.getElementById("oidc-button");
  button.textContent = `Sign in with ${site.oidc}`;
  button.href = `/auth/oidc/start?next=${encodeURIComponent(next)}`;
}

async function signIn(wallet, button) {
  button.disabled = true;
  status("signin-status", `Waiting for ${wallet.name}… approve the sign-in message in your wallet.`);
  try {
    const body = await signInWith(wallet, (address) => api("/v1/auth/siws/nonce", { method: "POST", body: { address } }));
    await api("/v1/auth/siws/verify", { method: "POST", body });
    status("signin-status", "Signed in. Taking you on…");
    location.assign(next);
  } catch (error) {
    status("signin-status", `Sign-in failed: ${error.message || error}`, { error: true });
    button.disabled = false;
  }
}

const NONE = "No Solana wallet found in this browser. Install one (Phantom, Solflare, Backpack…) and reload.";
let found = false;
onWallets((wallets) => {
  if (!wallets.length) return;
  found = true;
  document.getElementById("wallets").replaceChildren(...wallets.map((wallet) => {
    const button = el("button", { type: "button", class: "wallet", "data-wallet": wallet.name },
      wallet.icon ? el("img", { src: wallet.icon, alt: "" }) : null, `Sign in with ${wallet.name}`);
    button.addEventListener("click", () => signIn(wallet, button));
    return button;
  }));
});
// Wallet extensions register within moments of the page loading; after that, say none is here.
setTimeout(() => {
  if (!found) document.getElementById("wallets").replaceChildren(el("p", { class: "muted" }, NONE));
}, 1500);
