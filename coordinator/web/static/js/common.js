// Shared by every page: the JSON API client, small DOM helpers, formatting, polling, the header.

export const site = JSON.parse(document.body.dataset.site || "{}");
export const signedIn = document.body.dataset.signedIn === "true";

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

function cookie(name) {
  const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

/** Call the JSON API with the session cookie; state-changing calls carry the CSRF header. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = cookie("koretex_csrf");
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("The coordinator could not be reached. Check your connection.", 0);
  }
  if (response.status === 401 && signedIn) {
    window.location.assign("/signin?next=" + encodeURIComponent(location.pathname));
  }
  if (response.status === 204) return null;
  let payload = null;
  try { payload = await response.json(); } catch { payload = null; }
  if (!response.ok) {
    const message = payload?.error?.message || `The coordinator answered ${response.status}.`;
    throw new ApiError(message, response.status);
  }
  return payload;
}

/** Build an element: el("td", {class: "num"}, "12"). Text is always text, never HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function status(id, text, { error = false } = {}) {
  const node = document.getElementById(id);
  if (!node) return;
  node.textContent = text;
  node.classList.toggle("error", error);
}

const numberFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
export const fmt = {
  n: (value) => (value === null || value === undefined ? "—" : numberFormat.format(value)),
  int: (value) => (value === null || value === undefined ? "—" : Math.round(value).toLocaleString("en-US")),
  credits: (value) => `${new Intl.NumberFormat("en-US", {
    maximumFractionDigits: Math.abs(value) >= 1 || value === 0 ? 2 : 6,
  }).format(value)} cr`,
  usd: (value) => new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 6 }).format(value),
  pct: (value) => (value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`),
  date: (value) => new Date(value).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "short" }),
  wallet: (value) => (value && value.length > 12 ? `${value.slice(0, 4)}…${value.slice(-4)}` : value || "—"),
};

/** Run ``task`` now and every ``ms`` while the page is visible; errors are the task's to show. */
export function poll(task, ms) {
  let timer = null;
  const run = async () => {
    clearTimeout(timer);
    try { await task(); } finally {
      timer = setTimeout(run, document.hidden ? ms * 4 : ms);
    }
  };
  run();
  return () => clearTimeout(timer);
}

export async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  } catch {
    button.textContent = "Select and copy";
  }
}

function header() {
  const who = document.getElementById("who");
  if (!who) return;
  if (!signedIn) {
    if (location.pathname !== "/signin") {
      who.append(el("a", { class: "button ghost", href: "/signin?next=" + encodeURIComponent(location.pathname) }, "Sign in"));
    }
    return;
  }
  const name = el("span", { id: "who-name" }, "Signed in");
  const out = el("button", {
    type: "button", class: "ghost small", id: "sign-out",
    onclick: async () => {
      try { await api("/v1/auth/logout", { method: "POST" }); } finally { location.assign("/"); }
    },
  }, "Sign out");
  who.append(name, out);
  api("/v1/account").then((account) => {
    name.textContent = account.wallet ? fmt.wallet(account.wallet) : account.email || "Signed in";
    if (account.wallet) name.title = account.wallet;
  }).catch(() => {});
}

header();
