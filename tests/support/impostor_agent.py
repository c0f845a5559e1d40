"""A real agent (real link, session, worker and llama.cpp engine) serving substituted weights.

It registers as the catalogue model ``--claim`` and lies about its weights: it reports the
catalogue's sha256 while it loads ``--weights`` (a smaller stand-in or a cruder quantization).
With ``--genuine PATH --memorised FILE`` it is the smarter cheat: it answers the prompts listed in
FILE (the fingerprint prompts it has learned to recognise) with the genuine weights and every
other job with the substitute, so only re-scoring of ordinary jobs can catch it. With
``--genuine PATH --honest-while FILE`` it serves the genuine weights while FILE exists (its
admission exam) and the substitute once FILE is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncGenerator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent import hardware
from agent.engines.base import (
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    ScoringRequest,
)
from agent.engines.llama_cpp import LlamaCppEngine
from agent.errors import FatalLinkError
from agent.keys import load_or_create
from agent.link import Link
from agent.worker import JobRunner
from protocol import catalogue
from protocol.chat import TokenLogprob
from protocol.ids import ModelId
from protocol.messages import ModelOffer
from protocol.session import AgentSession, Offer


class SplitEngine:
    """Genuine weights for memorised prompts, the substitute for everything else."""

    name = "llama.cpp"

    def __init__(
        self, substitute: LlamaCppEngine, genuine: LlamaCppEngine | None, memorised: set[str],
        honest_while: Path | None = None,
    ) -> None:
        self._substitute = substitute
        self._genuine = genuine
        self._memorised = memorised
        self._honest_while = honest_while

    @property
    def model(self) -> ModelInfo:
        return self._substitute.model

    async def load(self) -> None:
        await self._substitute.load()
        if self._genuine is not None:
            await self._genuine.load()

    def _for(self, request: GenerationRequest) -> LlamaCppEngine:
        last = request.messages[-1].content
        if self._genuine is not None and (
            last in self._memorised
            or (self._honest_while is not None and self._honest_while.exists())
        ):
            return self._genuine
        return self._substitute

    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        return self._for(request).generate(request)

    async def score(self, request: ScoringRequest) -> tuple[TokenLogprob, ...]:
        return await self._substitute.score(request)

    async def close(self) -> None:
        await self._substitute.close()
        if self._genuine is not None:
            await self._genuine.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", action="append", required=True)
    parser.add_argument("--claim", default="gemma-3-270m")
    parser.add_argument("--weights", required=True, help="what it really serves")
    parser.add_argument("--genuine", default=None, help="the claimed weights, for memorised jobs")
    parser.add_argument("--memorised", default=None, help="JSON list of prompts it recognises")
    parser.add_argument("--honest-while", default=None, help="genuine while this file exists")
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--enrollment-token", default=None)
    args = parser.parse_args()

    entry = catalogue.by_id(args.claim)
    assert entry is not None and entry.weights
    claimed_sha = entry.weights[0].sha256  # the lie
    substitute = LlamaCppEngine(
        ModelInfo(args.weights, claimed_sha, 2048), slots=args.slots
    )
    genuine = (
        LlamaCppEngine(ModelInfo(args.genuine, claimed_sha, 2048), slots=args.slots)
        if args.genuine else None
    )
    memorised = set(json.loads(Path(args.memorised).read_text())) if args.memorised else set()
    honest_while = Path(args.honest_while) if args.honest_while else None
    engine = SplitEngine(substitute, genuine, memorised, honest_while)
    await engine.load()
    key = load_or_create("file", Path(os.environ["KORETEX_KEY_FILE"]))
    offer = Offer(
        agent_version="impostor", engine=engine.name,
        models=(ModelOffer(
            model=ModelId(args.claim), weights_sha256=claimed_sha, context_length=2048,
        ),),
        slots=args.slots, hardware=hardware.detect(), enrollment_token=args.enrollment_token,
    )
    link = Link(
        tuple(args.coordinator), lambda: AgentSession(key.signing_key, offer),
        JobRunner({ModelId(args.claim): engine}, args.slots), drain_grace_s=5,
        backoff_initial_s=float(os.environ.get("KORETEX_BACKOFF_INITIAL_S", "0.2")),
        backoff_max_s=float(os.environ.get("KORETEX_BACKOFF_MAX_S", "2")),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await link.run(stop)
    except FatalLinkError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(78)
    finally:
        await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
