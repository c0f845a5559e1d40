"""One replica against two: a thousand simulated nodes and 200 concurrent consumer streams.

Run from the repository root, with the test servers up::

    export $(scripts/test_services.sh start | xargs)
    python bench/scale.py                      # 1,000 nodes, 200 streams, 20 s per round
    python bench/scale.py --nodes 100 --streams 40 --duration 10   # a closer look
    python bench/scale.py --quick              # 20 nodes, 8 streams, 2 s: indicative only

(``bench/run_all.py`` starts the servers itself.)

For each deployment (one replica, then two, each time on a fresh PostgreSQL database and the
shared Redis): start the replicas as processes, connect ``--nodes`` light simulated nodes
(``bench/node_swarm.py``, real protocol, many per process) spread over them, measure the
replicas' memory before and after the nodes connect, then run ``--streams`` consumers that each
stream completions back to back for ``--duration`` seconds, spread over the replicas. Prints
requests/s, the gateway-added latency (time to first token minus the simulated engine's own
first-token delay, so what the coordinators and the network path add) p50/p99, and the memory
an idle connected node costs.

Targets: two replicas serve at least 1.7× one replica's requests/s; an idle connected node costs
under 50 KB of coordinator memory. Both compete for this machine's cores with the load
generator and the node swarm, so the ratio is only meaningful with cores to spare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import harness  # the repository on the path
import httpx
import psutil
from rich.console import Console
from rich.table import Table
from support.databases import POSTGRES_URL, drop_database, fresh_database
from support.replicas import REDIS_URL, Replica, api_key, start_replicas, wait_for_async

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"  # a chat model: Gemma 3 270M base serves completions only
TARGET_RATIO = 1.7
TARGET_BYTES_PER_NODE = 50 * 1024
console = Console()


@dataclass
class Round:
    replicas: int
    requests: int = 0
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    added_ms: list[float] = field(default_factory=list)
    bytes_per_node: float = 0.0
    replica_cpu_s: float = 0.0  # CPU time the replicas used while serving the streams

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cores_used(self) -> float:
        return self.replica_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.replica_cpu_s * 1000 / self.requests if self.requests else float("nan")

    def percentile(self, q: float) -> float:
        if not self.added_ms:
            return float("nan")
        ordered = sorted(self.added_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(replicas: list[Replica]) -> float:
    total = 0.0
    for replica in replicas:
        if replica.process is not None:
            times = psutil.Process(replica.process.pid).cpu_times()
            total += times.user + times.system
    return total


def rss(replicas: list[Replica]) -> int:
    return sum(
        psutil.Process(r.process.pid).memory_info().rss for r in replicas if r.process is not None
    )


async def connected(replicas: list[Replica]) -> int:
    total = 0
    for replica in replicas:
        try:
            total += int((await replica.health())["nodes"])
        except httpx.HTTPError:  # busy registering nodes: ask again
            return -1
    return total


async def consume(
    session: aiohttp.ClientSession, url: str, key: str, args: argparse.Namespace,
    deadline: float, result: Round, index: int,
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"q{index}"}],
            "max_tokens": args.tokens, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        sent = time.monotonic()
        first: float | None = None
        try:
            async with session.post(f"{url}/v1/chat/completions", json=body,
                                    headers=headers) as response:
                if response.status != 200:
                    result.errors += 1
                    result.error_kinds[f"HTTP {response.status}"] += 1
                    await response.read()
                    continue
                done = False
                async for line in response.content:
                    if first is None and line.startswith(b"data: {") and b'"content": "w' in line:
                        first = time.monotonic()
                    elif line.startswith(b"data: [DONE]"):
                        done = True
                    elif line.startswith(b'data: {"error"'):
                        result.error_kinds["error event"] += 1
                        break
                if done and first is not None:
                    result.requests += 1
                    result.added_ms.append((first - sent - args.first_token_delay) * 1000)
                else:
                    result.errors += 1
        except aiohttp.ClientError as exc:
            result.errors += 1
            result.error_kinds[type(exc).__name__] += 1


async def run_round(count: int, args: argparse.Namespace, directory: Path) -> Round:
    result = Round(count)
    database = await fresh_database("postgres", directory / "db")
    replicas: list[Replica] = []
    swarms: list[subprocess.Popen[bytes]] = []
    try:
        replicas = await start_replicas(
            directory, database, count, KORETEX_HEARTBEAT_INTERVAL_S="5",
            KORETEX_BUS__PRESENCE_TTL_S="6", KORETEX_BUS__JOB_LEASE_S="6",
            KORETEX_QUEUE_LENGTH="10000", KORETEX_LOG_LEVEL="WARNING",
            # one key drives every stream: lift the per-key limits (shared in Redis) out of the way
            KORETEX_LIMITS__REQUESTS_PER_MINUTE_PER_KEY="100000000",
            KORETEX_LIMITS__CONCURRENT_STREAMS_PER_KEY="100000",
            KORETEX_LIMITS__NEW_NODES_PER_MINUTE_PER_NETWORK="100000000",
        )
        key = await api_key(database, "bench", credits=10**15)
        urls = [r.base_url for r in replicas]

        def launch(first: int, nodes: int, name: str) -> None:
            swarms.append(subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "node_swarm.py"),
                 *[part for url in urls for part in ("--coordinator", url)],
                 "--nodes", str(nodes), "--first", str(first),
                 "--slots", "1", "--delay", str(args.delay), "--model", MODEL,
                 "--first-token-delay", str(args.first_token_delay)],
                stdout=subprocess.DEVNULL, stderr=(directory / f"{name}.log").open("wb"),
            ))

        async def settled(nodes: int) -> int:
            async def enough() -> bool:
                return await connected(replicas) >= nodes

            await wait_for_async(enough, 900, f"{nodes} nodes to connect")
            await asyncio.sleep(args.idle)  # idle: heartbeats and presence only
            return rss(replicas)

        # A first tenth warms every code path (one-time costs), then the rest are measured.
        warm = max(1, args.nodes // 10)
        launch(0, warm, "swarm-warm")
        before = await settled(warm)
        rest = args.nodes - warm
        per_process = -(-rest // args.swarm_processes)
        for p in range(args.swarm_processes):
            launch(warm + p * per_process, min(per_process, rest - p * per_process), f"swarm-{p}")
        result.bytes_per_node = (await settled(args.nodes) - before) / max(1, rest)

        deadline = time.monotonic() + args.duration
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started, cpu_before = time.monotonic(), cpu_seconds(replicas)
            await asyncio.gather(*(
                consume(session, urls[i % len(urls)], key, args, deadline, result, i)
                for i in range(args.streams)
            ))
            result.seconds = time.monotonic() - started
            result.replica_cpu_s = cpu_seconds(replicas) - cpu_before
    finally:
        for swarm in swarms:
            swarm.terminate()
        for swarm in swarms:
            try:
                swarm.wait(30)
            except subprocess.TimeoutExpired:
                swarm.kill()
        await asyncio.gather(*(r.stop() for r in replicas))
        await drop_database(database)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--swarm-processes", type=int, default=2)
    parser.add_argument("--idle", type=float, default=3.0, help="idle seconds before memory")
    harness.quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.streams, args.duration, args.swarm_processes = 20, 8, 2.0, 1
        args.idle = 1.0
    if POSTGRES_URL is None or REDIS_URL is None:
        sys.exit("start the servers first: export $(scripts/test_services.sh start | xargs)")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="koretex-scale-") as tmp:
        for count in (1, 2):
            console.print(f"[bold]{count} replica(s)[/]: {args.nodes} nodes, "
                          f"{args.streams} streams, {args.duration:.0f} s")
            rounds.append(await run_round(count, args, Path(tmp) / f"r{count}"))
    table = Table(title="bench/scale.py")
    for column in ("replicas", "requests/s", "errors", "added p50 ms", "added p99 ms",
                   "bytes per idle node", "replica cores busy", "replica CPU ms/request"):
        table.add_column(column, justify="right")
    for r in rounds:
        table.add_row(str(r.replicas), f"{r.rps:.1f}", str(r.errors), f"{r.percentile(0.5):.1f}",
                      f"{r.percentile(0.99):.1f}", f"{r.bytes_per_node:,.0f}",
                      f"{r.cores_used:.2f}", f"{r.cpu_ms_per_request:.2f}")
    console.print(table)
    for r in rounds:
        if r.error_kinds:
            console.print(f"{r.replicas} replica(s) errors: {dict(r.error_kinds)}")
    one, two = rounds
    ratio = two.rps / one.rps if one.rps else float("nan")
    worst_node = max(r.bytes_per_node for r in rounds)
    console.print(json.dumps({
        "ratio_two_to_one": round(ratio, 3), "target_ratio": TARGET_RATIO,
        "max_bytes_per_idle_node": round(worst_node), "target_bytes": TARGET_BYTES_PER_NODE,
        # Replicas share nothing but PostgreSQL and Redis: if a request costs two replicas no
        # more CPU than one, the requests/s ratio is bounded by the cores they could get here.
        "cpu_per_request_two_to_one": round(two.cpu_ms_per_request / one.cpu_ms_per_request, 3),
        "cpu_count": psutil.cpu_count(), "median_added_ms": statistics.median(
            [one.percentile(0.5), two.percentile(0.5)]),
    }))
    harness.report(
        "scale",
        f"2 replicas >= {TARGET_RATIO}× 1 replica's requests/s; idle node < "
        f"{TARGET_BYTES_PER_NODE // 1024} KB",
        f"{ratio:.2f}×, {worst_node / 1024:,.1f} KB per idle node ({one.rps:.0f} → "
        f"{two.rps:.0f} req/s)",
        bool(ratio >= TARGET_RATIO and worst_node < TARGET_BYTES_PER_NODE), quick=args.quick,
    )


if __name__ == "__main__":
    asyncio.run(main())
