import { api, copy, el, fmt, poll, status } from "./common.js";

const generate = document.getElementById("generate");
generate.addEventListener("click", async () => {
  generate.disabled = true;
  status("cmd-status", "Generating…");
  try {
    const issued = await api("/v1/account/enrollments", { method: "POST" });
    document.getElementById("command").hidden = false;
    document.getElementById("command-text").textContent = issued.install_command;
    document.getElementById("command-expires").textContent = fmt.date(issued.expires_at);
    status("cmd-status", "Paste this into Terminal on your Mac. Keep it private: it enrolls a node to your account.");
  } catch (error) {
    status("cmd-status", `Could not generate a command: ${error.message}`, { error: true });
  } finally {
    generate.disabled = false;
  }
});
document.getElementById("copy-command").addEventListener("click", (event) => copy(document.getElementById("command-text").textContent, event.target));

poll(async () => {
  try {
    const nodes = await api("/v1/account/nodes");
    document.getElementById("node-list").replaceChildren(...nodes.data.map((node) => el("li", { "data-node": node.node_id },
      el("span", { class: `pill ${node.status}` }, node.status), " ", el("code", {}, fmt.wallet(node.node_id)),
      ` · ${node.models.join(", ")} on ${node.engine}${node.chip ? ` · ${node.chip}` : ""}`,
    )));
    const online = nodes.data.filter((node) => node.status !== "offline").length;
    status("nodes-status", nodes.data.length
      ? `${online} of ${nodes.data.length} node${nodes.data.length === 1 ? "" : "s"} online.`
      : "Waiting for your node to connect…");
  } catch (error) {
    status("nodes-status", `Could not load your nodes: ${error.message}`, { error: true });
  }
}, 3000);
