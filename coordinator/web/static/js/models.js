import { api, copy, el, fmt, poll, status } from "./common.js";

function request(model) {
  return [
    `curl ${location.origin}/v1/chat/completions \\`,
    `  -H "Authorization: Bearer $KORETEX_API_KEY" \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}]}'`,
  ].join("\n");
}

let pricing = null;

async function refresh() {
  try {
    pricing = pricing || (await api("/v1/network/pricing"));
    const models = await api("/v1/network/models");
    const rows = models.data.map((model) => {
      const credits = model.credits_per_1m;
      const snippet = request(model.id);
      const button = el("button", { type: "button", class: "small ghost", "aria-label": `Copy the request for ${model.id}` }, "Copy request");
      button.addEventListener("click", () => copy(snippet, button));
      return el("tr", { "data-model": model.id },
        el("th", { scope: "row" }, el("code", {}, model.id)),
        el("td", { class: "num", "data-field": "nodes" }, fmt.int(model.nodes)),
        el("td", { "data-field": "credits" }, `${fmt.n(credits.input)} in · ${fmt.n(credits.output)} out`),
        el("td", { class: "num", "data-field": "bounty", title: "Providers serving this model earn this multiple of their share while the network is short of it" },
          model.bounty_multiplier > 1 ? `×${fmt.n(model.bounty_multiplier)}` : "none"),
        el("td", { "data-field": "usd" }, `${fmt.usd(credits.input * pricing.usd_per_credit)} in · ${fmt.usd(credits.output * pricing.usd_per_credit)} out`),
        el("td", {}, el("details", {}, el("summary", {}, "OpenAI request"), el("pre", {}, el("code", {}, snippet)), button)),
      );
    });
    document.querySelector("#models-table tbody").replaceChildren(...rows);
    status("models-status", models.data.length
      ? `${models.data.length} model${models.data.length === 1 ? "" : "s"} live · updated ${new Date().toLocaleTimeString("en-US")}`
      : "No model is being served right now. Nodes come and go — this list refreshes by itself.");
  } catch (error) {
    status("models-status", `Could not load the models: ${error.message}`, { error: true });
  }
}

poll(refresh, 5000);
