"""What the network path costs: the engine in-process against coordinator + agent on loopback.

Run from the repository root: ``python bench/gateway_overhead.py`` (``--quick``: concurrency 1,
one round of 16 tokens a path).

(a) ``direct``: the prompts go straight to a :class:`LlamaCppEngine` in this process.
(b) ``gateway``: the same prompts go through the official ``openai`` client (streaming, usage
    included) to a real coordinator in this process and a real ``koretex node run`` process.
At concurrency 1 the other two doors run beside it, on the same coordinator and node:
(c) ``responses``: the ``openai`` client's ``responses.create(stream=True)``;
(d) ``messages``: the ``anthropic`` client's ``messages.create(stream=True)``.

Both paths run the same engine configuration (small model, context 2048, ``THREADS`` per slot,
slots = concurrency), greedy decoding and the same prompts. Their rounds alternate A B B A so
that drift on the shared cores falls on both; only one path generates at a time.

Targets: the network path keeps at least 95% of generation throughput (gateway / direct >= 0.95)
and adds at most 5 ms to the time to first token at concurrency 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import harness  # the repository on the path
import openai
from gateway_overhead_lanes import (
    CELLS,
    CONTEXT_LENGTH,
    MAX_TOKENS,
    QUICK_CELLS,
    QUICK_MAX_TOKENS,
    THREADS,
    Cell,
    Lane,
    direct,
    measure_cell,
    through_gateway,
    through_messages,
    through_responses,
)
from gateway_overhead_report import report, verdict
from rich.console import Console
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator

from agent.engines.base import ModelInfo
from agent.engines.llama_cpp import LlamaCppEngine
from agent.models import file_sha256
from coordinator.routing import RoutingConstants

SHUTDOWN_TIMEOUT_S = 15.0


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy, from /proc (Linux)."""
    try:
        ticks = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc (Linux)."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def native_stderr_to(path: Path) -> Iterator[None]:
    """Send what llama.cpp writes to fd 2 while loading into ``path`` instead of the table."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


async def run_cell(
    cell: Cell, coordinator: RunningCoordinator, client: openai.AsyncOpenAI,
    claude_client: anthropic.AsyncAnthropic, model_path: Path, sha256: str, directory: Path,
    max_tokens: int,
) -> tuple[Lane, ...]:
    agent = AgentProcess.llama(
        coordinator, model_path, directory / f"agent-{cell.concurrency}",
        slots=cell.concurrency, extra=["--threads", str(THREADS)],
    )
    await agent.start()
    engine = LlamaCppEngine(
        ModelInfo(str(model_path), sha256, CONTEXT_LENGTH),
        slots=cell.concurrency, n_threads=THREADS,
    )
    try:
        with native_stderr_to(directory / "direct-engine.log"):
            await engine.load()
        assert agent.process is not None
        agent_pid = agent.process.pid
        def network() -> tuple[float, float, float]:
            return process_cpu_s(agent_pid), time.process_time(), machine_busy_s()

        lanes: tuple[Lane, ...] = (
            Lane(
                "direct", direct(engine, max_tokens),
                lambda: (time.process_time(), math.nan, machine_busy_s()),
            ),
            Lane("gateway", through_gateway(client, max_tokens), network),
        )
        if cell.concurrency == 1:  # the other doors, side by side with chat completions
            lanes += (
                Lane("responses", through_responses(client, max_tokens), network),
                Lane("messages", through_messages(claude_client, max_tokens), network),
            )
        await measure_cell(cell, lanes)
        return lanes
    finally:
        await engine.close()
        await agent.stop()


async def stop_coordinator(coordinator: RunningCoordinator) -> None:
    """Stop the coordinator without letting a stuck shutdown keep the bench from exiting."""
    try:
        await asyncio.wait_for(coordinator.stop(), timeout=SHUTDOWN_TIMEOUT_S)
    except TimeoutError:
        Console(stderr=True).print(
            f"[yellow]warning:[/] the coordinator did not shut down within "
            f"{SHUTDOWN_TIMEOUT_S:.0f} s; exiting anyway"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.quick_flag(parser)
    args = parser.parse_args()
    cells, max_tokens = (QUICK_CELLS, QUICK_MAX_TOKENS) if args.quick else (CELLS, MAX_TOKENS)
    model_path = harness.smollm2_path()
    sha256 = file_sha256(model_path)
    with tempfile.TemporaryDirectory(prefix="koretex-bench-") as scratch:
        directory = Path(scratch)
        # A brand-new node gets its full slots, and no speed floor can shut it out at 8-way load.
        routing = RoutingConstants(ramp_start_fraction=1.0, floor_tok_s=0.0)
        coordinator = await start_coordinator(directory / "coordinator", routing=routing)
        try:
            client = await coordinator.client()
            claude_client = anthropic.AsyncAnthropic(
                api_key=await coordinator.api_key(), base_url=coordinator.base_url,
                max_retries=0,
            )
            results: list[tuple[Cell, tuple[Lane, ...]]] = []
            try:
                for cell in cells:
                    lanes = await run_cell(cell, coordinator, client, claude_client, model_path,
                                           sha256, directory, max_tokens)
                    results.append((cell, lanes))
            finally:
                await client.close()
                await claude_client.close()
            report(results, max_tokens)
            verdict(results, args.quick)
        finally:
            await stop_coordinator(coordinator)


if __name__ == "__main__":
    asyncio.run(main())
