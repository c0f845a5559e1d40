import { api, el, fmt, status } from "./common.js";

function show(value, format) {
  if (format === "percent") return `${Math.round(value * 1000) / 10}%`;
  if (format === "percent2") return `${Math.round(value * value * 1000) / 10}%`;
  return typeof value === "number" ? fmt.n(value) : String(value);
}

async function constants() {
  try {
    const live = await api("/v1/points/constants");
    for (const slot of document.querySelectorAll("[data-constant]")) {
      const value = live[slot.dataset.constant];
      slot.textContent = value === undefined || value === null ? "—" : show(value, slot.dataset.format);
    }
    document.getElementById("tiers").textContent = live.tiers
      .map((tier) => `${tier.name} from ${fmt.int(tier.min_points)} points`).join(" · ") + " (over 30 days).";
    status("constants-status", "Numbers below are the live constants this coordinator scores with.");
  } catch (error) {
    status("constants-status", `Could not load the live constants: ${error.message}`, { error: true });
  }
}

async function models() {
  try {
    const live = await api("/v1/network/models");
    const select = document.getElementById("est-model");
    const known = new Set([...select.options].map((option) => option.value));
    for (const model of live.data) {
      if (!known.has(model.id)) select.append(el("option", { value: model.id }, model.id));
    }
  } catch { /* the default option stays */ }
}

const form = document.getElementById("estimate-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const query = new URLSearchParams({
    tok_s: data.get("tok_s"), model: data.get("model"),
    uptime: String(Number(data.get("uptime")) / 100), days_online: data.get("days_online"),
  });
  const button = form.querySelector("button");
  button.disabled = true;
  status("estimate-status", "Estimating…");
  try {
    const result = await api(`/v1/points/estimate?${query}`);
    document.getElementById("estimate-points").textContent = fmt.n(result.points_per_day);
    document.getElementById("estimate-points").dataset.value = String(result.points_per_day);
    const terms = [["Uptime", fmt.pct(result.uptime)], ["Hardware", fmt.n(result.hardware)],
      ["Expected tokens / day", fmt.int(result.tokens)], ["Model value", fmt.n(result.model_value)],
      ["Trust", fmt.pct(result.trust)]];
    document.getElementById("estimate-terms").replaceChildren(...terms.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
    status("estimate-status", "");
  } catch (error) {
    status("estimate-status", `Could not estimate: ${error.message}`, { error: true });
  } finally {
    button.disabled = false;
  }
});

constants();
models();
