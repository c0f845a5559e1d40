"""Koretex against what users would otherwise pick, on one machine, in one run.

Run from the repository root: ``python bench/gateway_vs_peers.py`` (LiteLLM comes with the
``bench`` extra; without it only the upstream and Koretex are measured, and the targets, which
are ratios to LiteLLM, are not judged). ``--quick``: concurrency 1 and 32, 1.5 s a cell.

(a) ``upstream``: a scripted OpenAI-compatible server that streams tokens instantly.
(b) ``litellm``: LiteLLM's proxy (``litellm[proxy]``), its router pointed at the upstream.
(c) ``koretex``: the coordinator (``koretex-coordinator serve``: uvloop where installed, SQLite,
    billing, routing and API-key auth on) with a scripted node that streams instantly.

Each runs in its own process; this process is the load generator (aiohttp, on uvloop where it is
installed, raw SSE parsing so the client is never the bottleneck). For concurrency 1, 32 and 256
every target gets the same wall time; the table shows requests/s, and the latency each target
adds to the upstream's time to first token and per token (p50/p99), as ratios against (a).

Targets: at concurrency 32 Koretex serves >= 10x LiteLLM's requests/s; at concurrency 1 it adds
at most a fifth of LiteLLM's added time to first token.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import harness  # the repository on the path
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"  # a chat model: Gemma 3 270M base serves completions only
TOKENS = 32
CONCURRENCY = (1, 32, 256)
CELL_S = float(os.environ.get("BENCH_CELL_S", "6"))
WARM_S = 1.0
QUICK_CONCURRENCY = (1, 32)
QUICK_CELL_S = 1.5
TARGET_RPS_RATIO = 10.0
TARGET_TTFT_RATIO = 0.2
KEY = "sk-bench"
LITELLM_KEY = "sk-" + secrets.token_hex(32)


# --- (a) the upstream -----------------------------------------------------------------------------


async def upstream_chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    n = min(int(body.get("max_tokens") or TOKENS), 4096)
    created = int(time.time())
    model = body.get("model", MODEL)
    head = (
        f'{{"id":"chatcmpl-up","object":"chat.completion.chunk","created":{created},'
        f'"model":"{model}","choices":[{{"index":0,"delta":'
    ).encode()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: " + head + b'{"role":"assistant","content":""},'
                         b'"finish_reason":null}]}\n\n')
    for i in range(n):
        await response.write(b"data: " + head + b'{"content":" w%d"},"finish_reason":null}]}\n\n'
                             % i)
    await response.write(b"data: " + head + b'{},"finish_reason":"length"}],'
                         b'"usage":{"prompt_tokens":7,"completion_tokens":%d,'
                         b'"total_tokens":%d}}\n\n' % (n, n + 7))
    await response.write(b"data: [DONE]\n\n")
    return response


async def upstream_models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


def use_uvloop() -> bool:
    """Run on uvloop where it is installed (as the coordinator does); say which loop it is."""
    try:
        import uvloop
    except ImportError:
        return False
    uvloop.install()
    return True


def serve_upstream(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream_chat)
    app.router.add_get("/v1/models", upstream_models)
    use_uvloop()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- processes ------------------------------------------------------------------------------------


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
    process = spawn([sys.executable, __file__, "upstream", "--port", str(port)],
                    work / "upstream.log")
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


# --- load -----------------------------------------------------------------------------------------


@dataclass
class Cell:
    requests: int = 0
    errors: int = 0
    ttft: list[float] = field(default_factory=list)
    per_token: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0


async def one_request(http: aiohttp.ClientSession, target: Target, cell: Cell | None) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "go"}],
            "max_tokens": TOKENS, "stream": True}
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    async with http.post(f"{target.base_url}/v1/chat/completions", json=body,
                         headers={"Authorization": f"Bearer {target.key}"}) as response:
        if response.status != 200:
            await response.read()
            if cell is not None:
                cell.errors += 1
            return
        async for line in response.content:
            if not line.startswith(b"data: {"):
                continue
            compact = line.replace(b'": ', b'":')
            if b'"content":' not in compact or b'"content":""' in compact:
                continue
            now = time.perf_counter()
            if tokens == 0:
                first = now
            last = now
            tokens += 1
    if cell is not None and tokens:
        cell.requests += 1
        cell.ttft.append(first - started)
        if tokens > 1:
            cell.per_token.append((last - first) / (tokens - 1))


async def run_cell(target: Target, concurrency: int) -> Cell:
    cell = Cell()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        warm_until = time.perf_counter() + WARM_S

        async def worker(record: bool, until: float) -> None:
            while time.perf_counter() < until:
                try:
                    await one_request(http, target, cell if record else None)
                except (aiohttp.ClientError, TimeoutError):
                    cell.errors += 1

        await asyncio.gather(*(worker(False, warm_until) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(True, started + CELL_S) for _ in range(concurrency)))
        cell.elapsed = time.perf_counter() - started
    return cell


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(results: dict[tuple[str, int], Cell], levels: tuple[int, ...]) -> dict[str, Any]:
    """Print the table and the targets; return the figures for the BENCH line."""
    figures: dict[str, Any] = {}
    header = (f"{'target':<9}{'conc':>5}{'req/s':>9}{'×up':>7}{'err':>5}"
              f"{'+TTFT p50':>11}{'+TTFT p99':>11}{'+tok p50':>10}{'+tok p99':>10}   (ms)")
    print(header)
    print("-" * len(header))
    for concurrency in levels:
        base = results[("upstream", concurrency)]
        for name in ("upstream", "litellm", "koretex"):
            cell = results.get((name, concurrency))
            if cell is None:
                continue
            added = [
                (pct(cell.ttft, q) - pct(base.ttft, q)) * 1000 for q in (0.5, 0.99)
            ] + [
                (pct(cell.per_token, q) - pct(base.per_token, q)) * 1000 for q in (0.5, 0.99)
            ]
            print(f"{name:<9}{concurrency:>5}{cell.rps:>9.1f}{cell.rps / base.rps:>7.2f}"
                  f"{cell.errors:>5}" + "".join(f"{v:>11.2f}" if i < 2 else f"{v:>10.3f}"
                                              for i, v in enumerate(added)))
    print()
    kore, lite = results.get(("koretex", 32)), results.get(("litellm", 32))
    if kore and lite and lite.rps:
        ratio = kore.rps / lite.rps
        figures["rps_ratio"] = ratio
        print(f"c=32 requests/s, Koretex / LiteLLM: {ratio:.1f}× (target >= 10×)")
    kore1, lite1, up1 = (results.get((n, 1)) for n in ("koretex", "litellm", "upstream"))
    if kore1 and lite1 and up1:
        k = statistics.median(kore1.ttft) - statistics.median(up1.ttft)
        li = statistics.median(lite1.ttft) - statistics.median(up1.ttft)
        print(f"c=1 added TTFT p50: Koretex {k * 1000:.2f} ms, LiteLLM {li * 1000:.2f} ms, "
              f"ratio {k / li if li else float('nan'):.3f} (target <= 0.2)")
        if li:
            figures["ttft_ratio"] = k / li
    for concurrency in levels:
        cell = results.get(("koretex", concurrency))
        if cell is not None:
            figures[f"koretex_rps_c{concurrency}"] = round(cell.rps, 1)
            figures[f"koretex_errors_c{concurrency}"] = cell.errors
            figures[f"koretex_vs_upstream_c{concurrency}"] = round(
                cell.rps / results[("upstream", concurrency)].rps, 3
            )
    return figures


def litellm_program() -> Path:
    """LiteLLM's proxy: from its own virtualenv (`make bench` makes .venv-peers, so its pins never
    move Koretex's), or beside this Python."""
    own = os.environ.get("KORETEX_BENCH_LITELLM")
    return Path(own) if own else Path(sys.executable).with_name("litellm")


def litellm_installed() -> bool:
    return litellm_program().exists()


def verdict(figures: dict[str, Any], levels: tuple[int, ...], quick: bool) -> None:
    """The BENCH line: the two ratios to LiteLLM, or Koretex against the upstream without it."""
    target = (f"Koretex >= {TARGET_RPS_RATIO:.0f}× LiteLLM's req/s at c=32; <= "
              f"{TARGET_TTFT_RATIO}× its added TTFT at c=1")
    extra = {k: v for k, v in figures.items() if k.startswith("koretex_")}
    if "rps_ratio" in figures and "ttft_ratio" in figures:
        harness.report(
            "gateway_vs_peers", target,
            f"{figures['rps_ratio']:.1f}× req/s, {figures['ttft_ratio']:.3f}× added TTFT",
            figures["rps_ratio"] >= TARGET_RPS_RATIO
            and figures["ttft_ratio"] <= TARGET_TTFT_RATIO,
            quick=quick, **extra,
        )
        return
    top = max(c for c in levels if f"koretex_rps_c{c}" in figures)
    harness.report(
        "gateway_vs_peers", target,
        f"LiteLLM not installed: Koretex {figures[f'koretex_rps_c{top}']:.0f} req/s at c={top} "
        f"({figures[f'koretex_vs_upstream_c{top}']:.2f}× the bare upstream)",
        None, quick=quick, **extra,
    )


async def main(only: list[str], levels: tuple[int, ...], quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="koretex-peers-") as tmp:
        work = Path(tmp)
        upstream = await start_upstream(work)
        targets = [upstream]
        try:
            if "litellm" in only:
                targets.append(await start_litellm(work, upstream))
            if "koretex" in only:
                targets.append(await start_koretex(work))
            results: dict[tuple[str, int], Cell] = {}
            for concurrency in levels:
                for target in targets:
                    results[(target.name, concurrency)] = await run_cell(target, concurrency)
                    print(f"  {target.name} c={concurrency}: "
                          f"{results[(target.name, concurrency)].rps:.1f} req/s", file=sys.stderr)
            verdict(report(results, levels), levels, quick)
        finally:
            for target in targets:
                target.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "upstream"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--only", default="litellm,koretex",
                        help="targets besides the upstream (litellm is left out where it is not "
                        "installed)")
    parser.add_argument("--concurrency", default=None,
                        help="comma-separated concurrency levels (default: 1,32,256)")
    harness.quick_flag(parser)
    args = parser.parse_args()
    if args.mode == "upstream":
        serve_upstream(args.port)
    else:
        only = args.only.split(",")
        if "litellm" in only and not litellm_installed():
            print("LiteLLM is not installed (the bench extra): measuring the upstream and "
                  "Koretex only", file=sys.stderr)
            only.remove("litellm")
        default = QUICK_CONCURRENCY if args.quick else CONCURRENCY
        levels = tuple(int(c) for c in args.concurrency.split(",")) if args.concurrency else default
        if args.quick:
            CELL_S, WARM_S = QUICK_CELL_S, 0.5
        loop = "uvloop" if use_uvloop() else "asyncio (uvloop not installed)"
        print(f"load generator on {loop}", file=sys.stderr)
        asyncio.run(main(only, levels, args.quick))
