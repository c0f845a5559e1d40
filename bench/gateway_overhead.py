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
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import harness  # the repository on the path
import openai
from rich.console import Console
from rich.table import Table
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator

from agent.engines.base import GeneratedToken, GenerationFinished, GenerationRequest, ModelInfo
from agent.engines.llama_cpp import LlamaCppEngine
from agent.models import file_sha256
from coordinator.routing import RoutingConstants
from protocol.chat import ChatMessage, SamplingParams

MODEL = "smollm2-135m-instruct"  # chat needs a model with a chat template
CONTEXT_LENGTH = 2048
# One thread per slot: at concurrency 1 this leaves the second core to the gateway and client, so
# the comparison measures the network path rather than two programs fighting over one core.
THREADS = 1
MAX_TOKENS = 64
TARGET_THROUGHPUT_RATIO = 0.95
TARGET_ADDED_TTFT_MS = 5.0
SHUTDOWN_TIMEOUT_S = 15.0
NOISY_MACHINE = 0.10  # share of the cores other programs may use before results are suspect

PROMPTS: tuple[str, ...] = (
    "Explain in two short paragraphs how a hash map handles collisions.",
    "Write a Python function that checks whether a string is a palindrome, with a docstring.",
    "Summarise the main causes of the French Revolution in a few sentences.",
    "What are three practical tips for sleeping better? Keep each tip to one sentence.",
    "Translate into French: 'The meeting has moved to Thursday afternoon because the client is "
    "travelling.'",
    "Draft a short, polite email asking a colleague to review my pull request by Friday.",
    "Why is the sky blue? Answer for a curious ten-year-old.",
    "List the main differences between TCP and UDP.",
)
# Warm-up asks something else: llama.cpp reuses a context's cached prefix, so warming up on a
# measured prompt would make that prompt's first measured run look instant.
WARM_UP_PROMPT = "In one sentence, what is a large language model?"


@dataclass(frozen=True)
class Cell:
    concurrency: int
    rounds: int  # per path
    requests_per_worker: int  # per round: each of `concurrency` workers sends this many in turn


CELLS = (Cell(1, rounds=4, requests_per_worker=2), Cell(8, rounds=2, requests_per_worker=1))


@dataclass(frozen=True, slots=True)
class Sample:
    prompt: int
    started: float
    first_token: float
    ended: float
    completion_tokens: int
    text: str

    @property
    def ttft_ms(self) -> float:
        return (self.first_token - self.started) * 1000

    @property
    def tok_s(self) -> float:
        return self.completion_tokens / (self.ended - self.started)


Ask = Callable[[int], Awaitable[Sample]]


@dataclass
class Lane:
    """One way of serving the prompts, and everything measured on it in one cell."""

    name: str
    ask: Ask
    # Cumulative CPU seconds: the engine's process, the gateway + client's, the whole machine.
    cpu_s: Callable[[], tuple[float, float, float]]
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    engine_cpu_s: float = 0.0
    gateway_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0

    @property
    def others_busy(self) -> float:
        """The share of the machine's cores other programs used while this lane generated."""
        ours = self.engine_cpu_s + (0.0 if math.isnan(self.gateway_cpu_s) else self.gateway_cpu_s)
        return (self.machine_cpu_s - ours) / (self.wall_s * (os.cpu_count() or 1))

    @property
    def tokens(self) -> int:
        return sum(s.completion_tokens for s in self.samples)

    @property
    def aggregate_tok_s(self) -> float:
        return self.tokens / self.wall_s

    def ttft_ms(self, quantile: float) -> float:
        return percentile([s.ttft_ms for s in self.samples], quantile)


def messages(prompt: int) -> list[ChatMessage]:
    """The chat for prompt number ``prompt``; -1 is the warm-up prompt."""
    return [ChatMessage(role="user", content=PROMPTS[prompt] if prompt >= 0 else WARM_UP_PROMPT)]


def direct(engine: LlamaCppEngine) -> Ask:
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0)

    async def ask(prompt: int) -> Sample:
        request = GenerationRequest(tuple(messages(prompt)), params)
        started, first, text = time.perf_counter(), math.nan, []
        finished: GenerationFinished | None = None
        async with aclosing(engine.generate(request)) as events:  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, GeneratedToken):
                    if not text:
                        first = time.perf_counter()
                    text.append(event.text)
                else:
                    finished = event
        assert finished is not None
        return Sample(
            prompt, started, first, time.perf_counter(), finished.completion_tokens, "".join(text)
        )

    return ask


def through_gateway(client: openai.AsyncOpenAI) -> Ask:
    async def ask(prompt: int) -> Sample:
        started, first, text, tokens = time.perf_counter(), math.nan, [], 0
        stream = await client.chat.completions.create(
            model=MODEL, messages=[m.model_dump() for m in messages(prompt)],  # type: ignore[misc]
            temperature=0.0, max_tokens=MAX_TOKENS, stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    # The role chunk goes out with the first token; time the token itself.
                    if choice.delta.content is not None and choice.delta.role is None:
                        if not text:
                            first = time.perf_counter()
                        text.append(choice.delta.content)
        return Sample(prompt, started, first, time.perf_counter(), tokens, "".join(text))

    return ask


def through_responses(client: openai.AsyncOpenAI) -> Ask:
    async def ask(prompt: int) -> Sample:
        started, first, text, tokens = time.perf_counter(), math.nan, [], 0
        stream = await client.responses.create(
            model=MODEL, input=messages(prompt)[0].content, temperature=0.0,
            max_output_tokens=MAX_TOKENS, stream=True,
        )
        async with stream:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    if not text:
                        first = time.perf_counter()
                    text.append(event.delta)
                elif event.type in ("response.completed", "response.incomplete"):
                    usage = event.response.usage
                    tokens = usage.output_tokens if usage is not None else 0
        return Sample(prompt, started, first, time.perf_counter(), tokens, "".join(text))

    return ask


def through_messages(client: anthropic.AsyncAnthropic) -> Ask:
    async def ask(prompt: int) -> Sample:
        started, first, text, tokens = time.perf_counter(), math.nan, [], 0
        stream = await client.messages.create(
            model=MODEL, messages=[{"role": "user", "content": messages(prompt)[0].content}],
            max_tokens=MAX_TOKENS, stream=True, extra_body={"temperature": 0.0},
        )
        async with stream:
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    if not text:
                        first = time.perf_counter()
                    text.append(event.delta.text)
                elif event.type == "message_delta":
                    tokens = event.usage.output_tokens
        return Sample(prompt, started, first, time.perf_counter(), tokens, "".join(text))

    return ask


async def run_round(lane: Lane, cell: Cell, offset: int, record: bool = True) -> None:
    """``cell.concurrency`` workers, each sending its requests one after another."""

    async def worker(index: int) -> list[Sample]:
        return [
            await lane.ask((offset + index + turn) % len(PROMPTS) if record else -1)
            for turn in range(cell.requests_per_worker)
        ]

    before = lane.cpu_s()
    began = time.perf_counter()
    results = await asyncio.gather(*(worker(i) for i in range(cell.concurrency)))
    wall = time.perf_counter() - began
    if record:
        engine_cpu, gateway_cpu, machine_cpu = (
            after - start for after, start in zip(lane.cpu_s(), before, strict=True)
        )
        lane.samples.extend(s for batch in results for s in batch)
        lane.wall_s += wall
        lane.engine_cpu_s += engine_cpu
        lane.gateway_cpu_s += gateway_cpu
        lane.machine_cpu_s += machine_cpu


async def measure_cell(cell: Cell, lanes: tuple[Lane, ...]) -> None:
    warm_up = Cell(cell.concurrency, rounds=1, requests_per_worker=1)
    for lane in lanes:
        await run_round(lane, warm_up, offset=0, record=False)
    for number in range(cell.rounds):
        order = lanes if number % 2 == 0 else lanes[::-1]
        for lane in order:
            await run_round(lane, cell, offset=number * cell.requests_per_worker)


def percentile(values: list[float], quantile: float) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[round(quantile * 100) - 1]


def peak_generating(samples: list[Sample]) -> int:
    """The most requests that were between their first and last token at the same moment."""
    edges = sorted(
        [(s.first_token, 1) for s in samples] + [(s.ended, -1) for s in samples],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


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
                "direct", direct(engine),
                lambda: (time.process_time(), math.nan, machine_busy_s()),
            ),
            Lane("gateway", through_gateway(client), network),
        )
        if cell.concurrency == 1:  # the other doors, side by side with chat completions
            lanes += (
                Lane("responses", through_responses(client), network),
                Lane("messages", through_messages(claude_client), network),
            )
        await measure_cell(cell, lanes)
        return lanes
    finally:
        await engine.close()
        await agent.stop()


def report(results: list[tuple[Cell, tuple[Lane, ...]]]) -> None:
    table = Table(title="Network path overhead: gateway + agent link vs. the engine in-process")
    for header in (
        "conc.", "path", "req.", "tokens", "TTFT p50 ms", "TTFT p90 ms", "req. tok/s p50",
        "agg. tok/s", "tput b/a", "+TTFT ms", "CPU ms/tok engine proc", "CPU ms/tok gw+client",
    ):
        table.add_column(header, justify="left" if header == "path" else "right")
    verdicts: list[str] = []
    notes: list[str] = []
    for cell, lanes in results:
        a, b = lanes[0], lanes[1]
        ratio = b.aggregate_tok_s / a.aggregate_tok_s
        added = b.ttft_ms(0.5) - a.ttft_ms(0.5)  # every lane asks the same prompts
        for lane in lanes:
            through = lane is not a
            gateway_cpu = f"{lane.gateway_cpu_s / lane.tokens * 1000:.2f}" if through else "—"
            table.add_row(
                str(cell.concurrency), lane.name, str(len(lane.samples)), str(lane.tokens),
                f"{lane.ttft_ms(0.5):.1f}", f"{lane.ttft_ms(0.9):.1f}",
                f"{statistics.median(s.tok_s for s in lane.samples):.1f}",
                f"{lane.aggregate_tok_s:.1f}",
                f"{lane.aggregate_tok_s / a.aggregate_tok_s:.3f}" if through else "",
                f"{lane.ttft_ms(0.5) - a.ttft_ms(0.5):+.1f}" if through else "",
                f"{lane.engine_cpu_s / lane.tokens * 1000:.2f}", gateway_cpu,
                end_section=lane is lanes[-1],
            )
        met = "met" if ratio >= TARGET_THROUGHPUT_RATIO else "MISSED"
        verdicts.append(
            f"throughput at concurrency {cell.concurrency}: gateway/direct = {ratio:.3f} "
            f"(target >= {TARGET_THROUGHPUT_RATIO}) {met}"
        )
        if cell.concurrency == 1:
            met = "met" if added <= TARGET_ADDED_TTFT_MS else "MISSED"
            verdicts.append(
                f"added TTFT at concurrency 1: {added:+.1f} ms (target <= "
                f"{TARGET_ADDED_TTFT_MS:.0f} ms) {met}"
            )
        texts = {s.prompt: s.text for s in a.samples}
        differing = sum(
            1 for lane in lanes[1:] for s in lane.samples if texts.get(s.prompt, s.text) != s.text
        )
        notes.append(
            f"concurrency {cell.concurrency}: {a.wall_s:.1f} s / {b.wall_s:.1f} s of generation "
            f"measured; peak requests generating at once {peak_generating(a.samples)} / "
            f"{peak_generating(b.samples)}; other programs kept {a.others_busy:.0%} / "
            f"{b.others_busy:.0%} of the cores busy; network answers differing from direct: "
            f"{differing}"
        )
    console = Console(width=160)
    console.print(table)
    console.print(
        f"Engine: {MODEL}, context {CONTEXT_LENGTH}, {THREADS} thread(s) per slot, slots = "
        f"concurrency; temperature 0, max_tokens {MAX_TOKENS}; rounds alternate A B B A after "
        "a warm-up round per path. TTFT = request start to first token; +TTFT = gateway TTFT "
        "p50 - direct TTFT p50; req. tok/s = completion tokens / request time; agg. = all "
        "completion tokens / wall time of the rounds."
    )
    for note in notes:
        console.print(f"  {note} (direct / gateway)")
    console.print("Targets:")
    for verdict in verdicts:
        console.print(f"  {verdict}")
    busiest = max(lane.others_busy for _, lanes in results for lane in lanes)
    if busiest > NOISY_MACHINE:
        console.print(
            f"[yellow]warning:[/] other programs kept up to {busiest:.0%} of the cores busy, so "
            "the wall-clock figures (TTFT, tok/s, ratios) are mostly their noise; the CPU "
            "ms/tok columns hold up better. Rerun on a quiet machine to judge the targets."
        )


async def stop_coordinator(coordinator: RunningCoordinator) -> None:
    """Stop the coordinator without letting a stuck shutdown keep the bench from exiting."""
    try:
        await asyncio.wait_for(coordinator.stop(), timeout=SHUTDOWN_TIMEOUT_S)
    except TimeoutError:
        Console(stderr=True).print(
            f"[yellow]warning:[/] the coordinator did not shut down within "
            f"{SHUTDOWN_TIMEOUT_S:.0f} s; exiting anyway"
        )


def verdict(results: list[tuple[Cell, tuple[Lane, ...]]], quick: bool) -> None:
    """The BENCH line: the worst throughput ratio of any door and the TTFT added at
    concurrency 1 (the worst door's)."""
    worst = min(
        lane.aggregate_tok_s / lanes[0].aggregate_tok_s
        for _, lanes in results for lane in lanes[1:]
    )
    added = max(
        lane.ttft_ms(0.5) - lanes[0].ttft_ms(0.5)
        for cell, lanes in results if cell.concurrency == 1 for lane in lanes[1:]
    )
    harness.report(
        "gateway_overhead",
        f"gateway/direct tok/s >= {TARGET_THROUGHPUT_RATIO}; +TTFT <= "
        f"{TARGET_ADDED_TTFT_MS:.0f} ms at c=1",
        f"{worst:.3f}, {added:+.1f} ms",
        worst >= TARGET_THROUGHPUT_RATIO and added <= TARGET_ADDED_TTFT_MS, quick=quick,
    )


async def main() -> None:
    global CELLS, MAX_TOKENS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        CELLS, MAX_TOKENS = (Cell(1, rounds=1, requests_per_worker=1),), 16
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
                for cell in CELLS:
                    lanes = await run_cell(cell, coordinator, client, claude_client, model_path,
                                           sha256, directory)
                    results.append((cell, lanes))
            finally:
                await client.close()
                await claude_client.close()
            report(results)
            verdict(results, args.quick)
        finally:
            await stop_coordinator(coordinator)


if __name__ == "__main__":
    asyncio.run(main())
