"""Measuring this machine's generation speed on the configured model, with the node's engine."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass

from agent.engines.base import Engine, GeneratedToken, GenerationRequest
from protocol.chat import ChatMessage, SamplingParams

PROMPT = (
    "Write a long, detailed story about a lighthouse keeper who finds a map in a bottle. "
    "Describe every place the map leads to."
)


@dataclass(frozen=True, slots=True)
class BenchRun:
    tokens: int
    time_to_first_token_s: float
    decode_s: float  # from the first token to the last

    @property
    def tok_s(self) -> float:
        """Decode speed: tokens after the first over the time they took."""
        if self.tokens <= 1 or self.decode_s <= 0:
            return 0.0
        return (self.tokens - 1) / self.decode_s


@dataclass(frozen=True, slots=True)
class BenchSummary:
    tok_s: float
    time_to_first_token_s: float
    tokens: int


def bench_request(max_tokens: int, seed: int) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage(role="user", content=PROMPT),),
        params=SamplingParams(max_tokens=max_tokens, temperature=0.7, seed=seed),
    )


async def measure(
    engine: Engine, max_tokens: int, seed: int, on_token: Callable[[], None],
    clock: Callable[[], float] = time.monotonic,
) -> BenchRun:
    """Generate once and time it; ``on_token`` is called for every token (a progress bar)."""
    started = clock()
    first: float | None = None
    last = started
    tokens = 0
    generation = engine.generate(bench_request(max_tokens, seed))
    async with aclosing(generation) as events:
        async for event in events:
            if isinstance(event, GeneratedToken):
                last = clock()
                if first is None:
                    first = last
                tokens += 1
                on_token()
    if first is None:
        return BenchRun(0, clock() - started, 0.0)
    return BenchRun(tokens, first - started, last - first)


def summarize(runs: list[BenchRun]) -> BenchSummary:
    """Medians over the runs, so one slow run (a cold cache) does not set the figure."""
    useful = [run for run in runs if run.tokens > 1] or runs
    return BenchSummary(
        tok_s=statistics.median(run.tok_s for run in useful),
        time_to_first_token_s=statistics.median(run.time_to_first_token_s for run in useful),
        tokens=sum(run.tokens for run in runs),
    )
