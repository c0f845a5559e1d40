"""A real agent process (real link, session and worker) around a scripted engine.

The engine replies with the words of a fixed text at a set pace, and fails on cue, so tests can
make a node misbehave exactly when they need it to. A continued job resumes from the word after
the continuation, so a seamless resume reproduces the full reply.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent import hardware
from agent.engines.base import (
    Engine,
    GeneratedToken,
    GenerationEvent,
    GenerationFinished,
    GenerationRequest,
    ModelInfo,
)
from agent.errors import ContextLengthExceeded, EngineError, FatalLinkError
from agent.keys import load_or_create
from agent.link import Link
from agent.worker import JobRunner, Send
from protocol.ids import ModelId
from protocol.messages import Job, ModelOffer
from protocol.session import AgentSession, Offer

REPLY = " ".join(f"w{i}" for i in range(1000))


class LoggingRunner(JobRunner):
    """Writes every job frame the node receives to a file, one JSON line each, as received."""

    def __init__(self, engine: Engine, model_id: ModelId, slots: int, *,
                 log_path: Path) -> None:
        super().__init__({model_id: engine}, slots)
        self.log_path = log_path

    def start(self, job: Job, send: Send) -> None:
        with self.log_path.open("a") as log:
            log.write(job.model_dump_json() + "\n")
        super().start(job, send)


class ScriptedEngine:
    name = "scripted"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.jobs = 0
        self.rng = random.Random(args.seed)
        self.words = [f"{args.word_prefix}{i}" for i in range(1000)] if args.word_prefix else (
            REPLY.split(" ")
        )

    @property
    def model(self) -> ModelInfo:
        return ModelInfo("scripted", "0" * 64, 4096)

    async def load(self) -> None:
        return None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        self.jobs += 1
        args = self.args
        if self.jobs <= args.fail_first or self.rng.random() < args.fail_rate:
            await asyncio.sleep(args.delay)
            raise EngineError("scripted failure")
        break_at = (
            self.rng.randint(1, 4) if self.rng.random() < args.break_rate else None
        )
        if any("context overflow" in m.content for m in request.messages):
            raise ContextLengthExceeded("scripted context overflow")
        if args.no_tokens:  # an empty answer: the first event is the end
            yield GenerationFinished("stop", 7, 0)
            return
        start = len(request.continuation.split()) if request.continuation else 0
        produced = 0
        await asyncio.sleep(args.first_token_delay)
        for word in self.words[start:]:
            if produced >= request.params.max_tokens:
                break
            if args.die_after and produced >= args.die_after:
                os._exit(9)
            if args.stall_after and produced >= args.stall_after:
                await asyncio.sleep(3600)
            if break_at is not None and produced >= break_at:
                raise EngineError("scripted failure mid-stream")
            text = word if start == 0 and produced == 0 else " " + word
            produced += 1
            yield GeneratedToken(text=text)
            await asyncio.sleep(args.delay)
        yield GenerationFinished("length", 7, produced)
        # As llama.cpp's worker thread returning its context: the slot frees a moment after
        # the last event has left.
        await asyncio.sleep(args.finish_delay)

    async def close(self) -> None:
        return None


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", action="append", required=True)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument(
        "--finish-delay", type=float, default=0.0, help="seconds a slot stays taken after the end"
    )
    parser.add_argument("--fail-first", type=int, default=0, help="jobs to fail with an error")
    parser.add_argument("--no-tokens", action="store_true", help="answer every job empty")
    parser.add_argument("--die-after", type=int, default=0, help="exit after N tokens of a job")
    parser.add_argument("--stall-after", type=int, default=0, help="go silent after N tokens")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="P(fail before 1st token)")
    parser.add_argument("--break-rate", type=float, default=0.0, help="P(fail mid-stream)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--declared-tok-s", type=float, default=None)
    parser.add_argument("--enrollment-token", default=None)
    parser.add_argument("--log-jobs", type=Path, default=None, help="append received jobs here")
    parser.add_argument(
        "--word-prefix", default="", help="reply x0 x1 … instead of w0 w1 …: another model"
    )
    args = parser.parse_args()

    key = load_or_create("file", Path(os.environ["KORETEX_KEY_FILE"]))
    engine = ScriptedEngine(args)
    offer = Offer(
        agent_version="scripted", engine="scripted",
        models=(ModelOffer(model=ModelId(args.model), context_length=4096),),
        slots=args.slots, hardware=hardware.detect(), declared_tok_s=args.declared_tok_s,
        enrollment_token=args.enrollment_token,
    )
    link = Link(
        tuple(args.coordinator), lambda: AgentSession(key.signing_key, offer),
        (
            LoggingRunner(engine, ModelId(args.model), args.slots, log_path=args.log_jobs)
            if args.log_jobs else JobRunner({ModelId(args.model): engine}, args.slots)
        ),
        drain_grace_s=5,
        backoff_initial_s=float(os.environ.get("KORETEX_BACKOFF_INITIAL_S", "0.2")),
        backoff_max_s=float(os.environ.get("KORETEX_BACKOFF_MAX_S", "2")),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await link.run(stop)
    except FatalLinkError as exc:  # as `koretex node run` does: say why, exit 78 (EX_CONFIG)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(78)


if __name__ == "__main__":
    asyncio.run(main())
