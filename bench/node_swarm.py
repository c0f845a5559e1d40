"""Many light simulated nodes in one process, each a real node on the wire.

Every node has its own ed25519 key and its own websocket, and runs the agent's real
:class:`~agent.link.Link` (challenge, signed registration, heartbeats, reconnect with backoff)
and :class:`~agent.worker.JobRunner` (slots, cancel); only the engine is simulated: it writes
the words ``w0 w1 …`` at a set pace. A thousand of them fit in a few processes.

    python bench/node_swarm.py --coordinator URL [--coordinator URL2] --nodes 500

``bench/scale.py`` drives it that way. Without ``--coordinator`` it is a benchmark of its own: it
starts a coordinator in this process (SQLite), connects ``--nodes`` nodes (``--quick``: 50) and
measures how long until every one is registered and what a connected node costs this process.
Target: every node registers, at least 20 a second.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import harness  # the repository on the path
import httpx
import nacl.signing
import psutil

from agent import hardware
from agent.engines.base import (
    GeneratedToken,
    GenerationEvent,
    GenerationFinished,
    GenerationRequest,
    ModelInfo,
)
from agent.link import Link
from agent.worker import JobRunner
from protocol.ids import ModelId
from protocol.messages import ModelOffer
from protocol.session import AgentSession, Offer


class PacedEngine:
    """Words at a fixed pace, after a fixed first-token delay; shared by every node."""

    name = "simulated"

    def __init__(self, delay_s: float, first_token_delay_s: float) -> None:
        self.delay_s = delay_s
        self.first_token_delay_s = first_token_delay_s

    @property
    def model(self) -> ModelInfo:
        return ModelInfo("simulated", "0" * 64, 4096)

    async def load(self) -> None:
        return None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        await asyncio.sleep(self.first_token_delay_s)
        for produced in range(request.params.max_tokens):
            yield GeneratedToken(text=("" if produced == 0 else " ") + f"w{produced}")
            await asyncio.sleep(self.delay_s)
        yield GenerationFinished("length", 7, request.params.max_tokens)

    async def close(self) -> None:
        return None


TARGET_PER_S = 20.0


def links(args: argparse.Namespace, urls: list[str]) -> list[Link]:
    """One real agent link per simulated node, spread over the coordinators given."""
    engine = PacedEngine(args.delay, args.first_token_delay)
    model = ModelId(args.model)
    machine = hardware.detect()
    made = []
    for index in range(args.first, args.first + args.nodes):
        offer = Offer(
            agent_version="swarm", engine="simulated",
            models=(ModelOffer(model=model, context_length=4096),), slots=args.slots,
            hardware=machine,
        )
        key = nacl.signing.SigningKey.generate()
        turn = index % len(urls)  # spread nodes over the replicas given
        made.append(Link(
            tuple(urls[turn:] + urls[:turn]),
            lambda key=key, offer=offer: AgentSession(key, offer),  # type: ignore[misc]
            JobRunner({model: engine}, args.slots), drain_grace_s=1.0,
            backoff_initial_s=0.5, backoff_max_s=5.0,
        ))
    return made


async def run_links(made: list[Link], stop: asyncio.Event) -> None:
    tasks = []
    for link in made:  # a gentle ramp: registrations write to the database
        tasks.append(asyncio.create_task(link.run(stop)))
        await asyncio.sleep(0.01)
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)


async def serve(args: argparse.Namespace) -> None:
    """The swarm for coordinators elsewhere, until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await run_links(links(args, args.coordinator), stop)


async def connected(url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{url}/healthz")
        response.raise_for_status()
        return int(response.json()["nodes"])


async def standalone(args: argparse.Namespace) -> None:
    """Connect the swarm to a coordinator of its own and time the registrations."""
    from support.cluster import start_coordinator

    with tempfile.TemporaryDirectory(prefix="koretex-swarm-") as scratch:
        # Every simulated node is a new identity from loopback: lift the per-network limit.
        coordinator = await start_coordinator(
            Path(scratch), limits={"new_nodes_per_minute_per_network": 1_000_000}
        )
        me = psutil.Process()
        stop = asyncio.Event()
        try:
            before = me.memory_info().rss
            made = links(args, [coordinator.base_url])
            began = time.perf_counter()
            swarm = asyncio.create_task(run_links(made, stop))
            deadline = began + max(60.0, args.nodes / 5)
            count = 0
            while (count := await connected(coordinator.base_url)) < args.nodes:
                if time.perf_counter() > deadline or swarm.done():
                    break
                await asyncio.sleep(0.1)
            seconds = time.perf_counter() - began
            per_node = (me.memory_info().rss - before) / max(1, count)
            stop.set()
            await swarm
        finally:
            await coordinator.stop()
    rate = count / seconds
    print(f"{count}/{args.nodes} nodes registered in {seconds:.2f} s ({rate:.1f}/s); "
          f"{per_node / 1024:.1f} KB per connected node (swarm and coordinator in one process)")
    harness.report(
        "node_swarm", f"all {args.nodes} nodes register, >= {TARGET_PER_S:.0f}/s",
        f"{count}/{args.nodes} in {seconds:.2f} s ({rate:.1f}/s)",
        count == args.nodes and rate >= TARGET_PER_S, quick=args.quick,
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", action="append", help="URL; none: a benchmark of its own")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--first", type=int, default=0, help="index of the first node (spread)")
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    harness.quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.nodes = 50
    if args.coordinator:
        await serve(args)
    else:
        await standalone(args)


if __name__ == "__main__":
    asyncio.run(main())
