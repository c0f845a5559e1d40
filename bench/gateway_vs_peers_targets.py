"""The three servers ``bench/gateway_vs_peers.py`` loads, each started as its own process.

(a) the scripted upstream (``bench/gateway_vs_peers_upstream.py``); (b) LiteLLM's proxy, its
router pointed at the upstream; (c) the coordinator (``koretex-coordinator serve``) with a
scripted node that streams instantly. Each is ready when its ``/v1/models`` lists a model.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from gateway_vs_peers_upstream import MODEL

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = Path(__file__).with_name("gateway_vs_peers_upstream.py")
KEY = "sk-bench"
LITELLM_KEY = "sk-" + secrets.token_hex(32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    name: str
    base_url: str
    key: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


async def wait_ready(url: str, headers: dict[str, str], process: subprocess.Popen[bytes],
                     timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the server exited")
            try:
                async with http.get(url, headers=headers) as response:
                    if response.status == 200:
                        body = await response.json()
                        if body.get("data"):
                            return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.2)


async def start_upstream(work: Path) -> Target:
    port = free_port()
    process = spawn([sys.executable, str(UPSTREAM), "--port", str(port)], work / "upstream.log")
    target = Target("upstream", f"http://127.0.0.1:{port}", KEY, [process])
    await wait_ready(f"{target.base_url}/v1/models", {}, process)
    return target


async def start_litellm(work: Path, upstream: Target) -> Target:
    port = free_port()
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream.base_url}/v1\n"
        "      api_key: sk-upstream\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "general_settings:\n"  # authentication on, as it is for Koretex
        f"  master_key: {LITELLM_KEY}\n"
    )
    litellm = litellm_program()
    process = spawn([str(litellm), "--config", str(config), "--port", str(port),
                     "--host", "127.0.0.1", "--num_workers", "1"], work / "litellm.log",
                    {"LITELLM_LOG": "ERROR"})
    target = Target("litellm", f"http://127.0.0.1:{port}", LITELLM_KEY, [process])
    await wait_ready(f"{target.base_url}/v1/models", {"Authorization": f"Bearer {LITELLM_KEY}"},
                     process, timeout=240)
    return target


async def start_koretex(work: Path) -> Target:
    port = free_port()
    env = {
        "KORETEX_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'koretex.db'}",
        "KORETEX_HOST": "127.0.0.1", "KORETEX_PORT": str(port),
        "KORETEX_ROUTING__RAMP_START_FRACTION": "1.0",
        # the benchmark is one key at 256 streams: lift the per-key limits out of its way
        "KORETEX_LIMITS__REQUESTS_PER_MINUTE_PER_KEY": "100000000",
        "KORETEX_LIMITS__CONCURRENT_STREAMS_PER_KEY": "100000",
        "KORETEX_QUEUE_LENGTH": "4096",
        # the node is scripted, not the real model: it would never pass the admission exam
        "KORETEX_AUTHENTICITY__EXAM_CHECKS": "0",
        "KORETEX_IDENTITY__PAID_REQUIRES_ENROLLMENT": "false",
    }
    created = subprocess.run(
        [sys.executable, "-m", "coordinator", "keys", "create", "--credits", "100000000"],
        env={**os.environ, "PYTHONPATH": str(REPO), **env}, cwd=REPO, capture_output=True,
        check=True, text=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    coordinator = spawn([sys.executable, "-m", "coordinator", "serve"], work / "koretex.log", env)
    target = Target("koretex", f"http://127.0.0.1:{port}", key, [coordinator])
    key_file = work / "node" / "node.key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    from support.cluster import write_node_key

    write_node_key(key_file)
    agent = spawn(
        [sys.executable, str(REPO / "tests" / "support" / "scripted_agent.py"),
         "--coordinator", target.base_url, "--delay", "0", "--slots", "256",
         "--model", MODEL],
        work / "node.log",
        {"KORETEX_KEY_STORE": "file", "KORETEX_KEY_FILE": str(key_file),
         "XDG_CONFIG_HOME": str(work / "node"), "XDG_STATE_HOME": str(work / "node")},
    )
    target.processes.append(agent)
    await wait_ready(f"{target.base_url}/v1/models", {"Authorization": f"Bearer {key}"},
                     coordinator)
    return target


def litellm_program() -> Path:
    """LiteLLM's proxy: from its own virtualenv (`make bench` makes .venv-peers, so its pins never
    move Koretex's), or beside this Python."""
    own = os.environ.get("KORETEX_BENCH_LITELLM")
    return Path(own) if own else Path(sys.executable).with_name("litellm")


def litellm_installed() -> bool:
    return litellm_program().exists()
