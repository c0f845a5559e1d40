"""The ways ``bench/gateway_overhead.py`` serves its prompts, and the rounds that time them.

A :class:`Lane` is one way of asking (the engine in-process, or one door of the gateway through
its official client) with everything measured on it in one :class:`Cell`; :func:`measure_cell`
runs the lanes' rounds in the order A B B A so that drift on the shared cores falls on all.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field

import anthropic
import openai

from agent.engines.base import GeneratedToken, GenerationFinished, GenerationRequest
from agent.engines.llama_cpp import LlamaCppEngine
from protocol.chat import ChatMessage, SamplingParams

MODEL = "smollm2-135m-instruct"  # chat needs a model with a chat template
CONTEXT_LENGTH = 2048
# One thread per slot: at concurrency 1 this leaves the second core to the gateway and client, so
# the comparison measures the network path rather than two programs fighting over one core.
THREADS = 1
MAX_TOKENS = 64
QUICK_MAX_TOKENS = 16

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
QUICK_CELLS = (Cell(1, rounds=1, requests_per_worker=1),)


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


def direct(engine: LlamaCppEngine, max_tokens: int) -> Ask:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)

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


def through_gateway(client: openai.AsyncOpenAI, max_tokens: int) -> Ask:
    async def ask(prompt: int) -> Sample:
        started, first, text, tokens = time.perf_counter(), math.nan, [], 0
        stream = await client.chat.completions.create(
            model=MODEL, messages=[m.model_dump() for m in messages(prompt)],  # type: ignore[misc]
            temperature=0.0, max_tokens=max_tokens, stream=True,
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


def through_responses(client: openai.AsyncOpenAI, max_tokens: int) -> Ask:
    async def ask(prompt: int) -> Sample:
        started, first, text, tokens = time.perf_counter(), math.nan, [], 0
        stream = await client.responses.create(
            model=MODEL, input=messages(prompt)[0].content, temperature=0.0,
            max_output_tokens=max_tokens, stream=True,
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


def through_messages(client: anthropic.AsyncAnthropic, max_tokens: int) -> Ask:
    async def ask(prompt: int) -> Sample:
        started, first, text, tokens = time.perf_counter(), math.nan, [], 0
        stream = await client.messages.create(
            model=MODEL, messages=[{"role": "user", "content": messages(prompt)[0].content}],
            max_tokens=max_tokens, stream=True, extra_body={"temperature": 0.0},
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


