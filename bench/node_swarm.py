"""Many light simulated nodes in one process, each a real node on the wire.

Every node has its own ed25519 key and its own websocket, and runs the agent's real
:class:`~agent.link.Link` (challenge, signed registration, heartbeats, reconnect with backoff)
and :class:`~agent.worker.JobRunner` (slots, cancel); only the engine is simulated: it writes
the words ``w0 w1 …`` at a set pace. A thousand of them fit in a few processes.

    python bench/node_swarm.py --coordinator URL [--coordinator URL2] --nodes 500
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nacl.signing

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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", action="append", required=True)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--first", type=int, default=0, help="index of the first node (spread)")
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    args = parser.parse_args()

    engine = PacedEngine(args.delay, args.first_token_delay)
    model = ModelId(args.model)
    machine = hardware.detect()
    urls: list[str] = args.coordinator
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    links = []
    for index in range(args.first, args.first + args.nodes):
        offer = Offer(
            agent_version="swarm", engine="simulated",
            models=(ModelOffer(model=model, context_length=4096),), slots=args.slots,
            hardware=machine,
        )
        key = nacl.signing.SigningKey.generate()
        turn = index % len(urls)  # spread nodes over the replicas given
        links.append(Link(
            tuple(urls[turn:] + urls[:turn]),
            lambda key=key, offer=offer: AgentSession(key, offer),  # type: ignore[misc]
            JobRunner(engine, model, args.slots), drain_grace_s=1.0,
            backoff_initial_s=0.5, backoff_max_s=5.0,
        ))
    tasks = []
    for link in links:  # a gentle ramp: registrations write to the database
        tasks.append(asyncio.create_task(link.run(stop)))
        await asyncio.sleep(0.01)
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
