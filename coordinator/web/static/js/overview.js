import { api, fmt, poll } from "./common.js";

poll(async () => {
  const [models, board] = await Promise.allSettled([
    api("/v1/network/models"), api("/v1/leaderboard?days=30"),
  ]);
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  if (models.status === "fulfilled") {
    set("stat-models", fmt.int(models.value.data.length));
    set("stat-nodes", fmt.int(models.value.data.reduce((sum, model) => sum + model.nodes, 0)));
  } else {
    set("stat-models", "unavailable");
    set("stat-nodes", "unavailable");
  }
  if (board.status === "fulfilled" && board.value.data.length) {
    set("stat-top", fmt.wallet(board.value.data[0].provider));
  } else {
    set("stat-top", board.status === "fulfilled" ? "nobody yet" : "unavailable");
  }
}, 15000);
