"""What constrained decoding costs: tokens per second with a JSON schema against without one.

Run from the repository root: ``python bench/constrained.py`` (``--quick``: one round, a few
seconds).

On the llama.cpp engine with SmolLM2 135M Instruct (a small model makes each token cheap, so the
mask's per-token cost shows at its most visible), the same prompts are answered in rounds that
alternate A B B A:
  (a) ``free``: greedy, unconstrained, stopped at the same number of tokens the constrained
      answer took, so both decode the same count;
  (b) ``schema``: greedy under a JSON schema (llguidance computes the allowed tokens each step).
Throughput is the tokens after the first over the time from the first to the last: the
decode, where the mask is computed each step (prefill is the same on both paths).

Target: constrained decoding keeps at least 80% of the unconstrained tokens per second (best of
rounds, as in bench/engines.py: on a shared 2-core machine the fastest run is the truest).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import harness  # the repository on the path
from rich.console import Console
from rich.table import Table

from agent.engines.base import GeneratedToken, GenerationFinished, GenerationRequest, ModelInfo
from agent.engines.llama_cpp import LlamaCppEngine
from protocol.chat import ChatMessage, SamplingParams

TARGET_RATIO = 0.80
PROMPTS = (
    "Describe a person named Ann who is 31 and lives in Rome, as JSON.",
    "Give me a book with its title, author and year of publication as JSON.",
    "Invent a product with a name, a price and three tags. Answer in JSON.",
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "details": {"type": "array", "items": {"type": "string", "maxLength": 30},
                    "maxItems": 4},
        "year": {"type": "integer"},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "details", "year", "ok"],
    "additionalProperties": False,
}
MAX_TOKENS = 96


async def answer(engine: LlamaCppEngine, prompt: str, **params: Any) -> tuple[int, float]:
    """(tokens decoded after the first, their seconds) for one greedy answer: the decode
    alone, where the mask is paid for (the prompt's prefill is the same on both paths)."""
    request = GenerationRequest(
        (ChatMessage(role="user", content=prompt),),
        SamplingParams(temperature=0.0, **params),
    )
    first = last = 0.0
    tokens = 0
    async for event in engine.generate(request):
        if isinstance(event, GeneratedToken):
            last = time.perf_counter()
            first = first or last
        elif isinstance(event, GenerationFinished):
            tokens = event.completion_tokens
    return max(tokens - 1, 0), last - first


async def run(rounds: int) -> tuple[float, float]:
    info = ModelInfo(str(harness.smollm2_path()), "0" * 64, context_length=2048)
    engine = LlamaCppEngine(info, slots=1, n_threads=1)
    await engine.load()
    await answer(engine, PROMPTS[0], max_tokens=4, json_schema=SCHEMA)  # builds the vocabulary
    best: dict[str, dict[str, float]] = {"free": {}, "schema": {}}
    try:
        for round_ in range(rounds):
            for prompt in PROMPTS:
                order = ("schema", "free") if round_ % 2 == 0 else ("free", "schema")
                length = None
                for path in order:
                    if path == "schema":
                        tokens, seconds = await answer(
                            engine, prompt, max_tokens=MAX_TOKENS, json_schema=SCHEMA
                        )
                        length = tokens + 1
                    else:
                        tokens, seconds = await answer(
                            engine, prompt, max_tokens=length or MAX_TOKENS
                        )
                    speed = tokens / seconds if seconds > 0 else 0.0
                    best[path][prompt] = max(best[path].get(prompt, 0.0), speed)
    finally:
        await engine.close()
    free = sum(best["free"].values()) / len(PROMPTS)
    constrained = sum(best["schema"].values()) / len(PROMPTS)
    return free, constrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.quick_flag(parser)
    args = parser.parse_args()
    free, constrained = asyncio.run(run(1 if args.quick else 4))
    ratio = constrained / free
    table = Table(title="Constrained decoding, SmolLM2 135M on llama.cpp (1 thread, greedy)")
    table.add_column("path")
    table.add_column("tok/s (best of rounds)", justify="right")
    table.add_row("unconstrained", f"{free:.1f}")
    table.add_row("JSON schema (llguidance)", f"{constrained:.1f}")
    table.add_row("ratio", f"{ratio:.2f}")
    Console().print(table)
    harness.report(
        "constrained", f">= {TARGET_RATIO:.0%} of unconstrained tok/s",
        f"{ratio:.2f}x ({constrained:.0f} vs {free:.0f} tok/s)", ratio >= TARGET_RATIO,
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
