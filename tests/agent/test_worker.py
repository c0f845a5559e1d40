"""The job runner against a scripted engine: streaming, refusals, cancels, failures, draining."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from agent.engines.base import (
    GeneratedToken,
    GenerationEvent,
    GenerationFinished,
    GenerationRequest,
    ModelInfo,
)
from agent.errors import ContextLengthExceeded, EngineError, RequestRejected
from agent.worker import JobRunner
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob, WireModel
from protocol.ids import JobId, ModelId
from protocol.messages import Job, JobDone, JobFailed, TokenDelta

MODEL = ModelId("gemma-3-270m")
WAIT_S = 5.0


@dataclass
class Script:
    """What the engine does for one prompt."""

    tokens: tuple[str, ...] = ("Hel", "lo", " there")
    fail_with: Exception | None = None  # raised once ``fail_after`` tokens are out
    fail_after: int = 0
    gate: asyncio.Event | None = None  # after the first token, wait for this before the rest
    pace_s: float = 0.001


@dataclass
class ScriptedEngine:
    """An engine that plays the script named by the last user message."""

    scripts: dict[str, Script]
    name: str = "scripted"
    started: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    @property
    def model(self) -> ModelInfo:
        return ModelInfo("scripted", "0" * 64, 4096)

    async def load(self) -> None:
        return None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        prompt = request.messages[-1].content
        script = self.scripts[prompt]
        self.started.append(prompt)
        try:
            for produced, text in enumerate(script.tokens):
                if script.fail_with is not None and produced == script.fail_after:
                    raise script.fail_with
                await asyncio.sleep(script.pace_s)
                logprob = TokenLogprob(token_id=produced, token=text, logprob=-0.5)
                yield GeneratedToken(text=text, logprob=logprob if request.top_logprobs else None)
                if produced == 0 and script.gate is not None:
                    await script.gate.wait()
            if script.fail_with is not None and script.fail_after >= len(script.tokens):
                raise script.fail_with
            yield GenerationFinished("stop", prompt_tokens=7, completion_tokens=len(script.tokens))
        finally:
            self.closed.append(prompt)

    async def close(self) -> None:
        return None


class Outbox:
    """The link's send, recording every message and letting tests wait for one."""

    def __init__(self) -> None:
        self.sent: list[WireModel] = []
        self._changed = asyncio.Condition()

    async def send(self, message: WireModel) -> None:
        async with self._changed:
            self.sent.append(message)
            self._changed.notify_all()

    async def until(self, predicate: Callable[[list[WireModel]], bool]) -> None:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: predicate(self.sent))

    async def end_of(self, job_id: str) -> JobDone | JobFailed:
        await self.until(lambda sent: any(_ends(m, job_id) for m in sent))
        return next(m for m in self.sent if _ends(m, job_id))  # type: ignore[return-value]

    def of(self, job_id: str) -> list[WireModel]:
        return [m for m in self.sent if getattr(m, "job_id", None) == job_id]

    def texts(self, job_id: str) -> list[str]:
        return [m.text for m in self.of(job_id) if isinstance(m, TokenDelta)]


def _ends(message: WireModel, job_id: str) -> bool:
    return isinstance(message, JobDone | JobFailed) and message.job_id == job_id


def job(job_id: str, prompt: str, model: ModelId = MODEL, top_logprobs: int = 0) -> Job:
    return Job(
        job_id=JobId(job_id), model=model, messages=(ChatMessage(role="user", content=prompt),),
        params=SamplingParams(max_tokens=16), top_logprobs=top_logprobs,
    )


async def settled(runner: JobRunner) -> None:
    """Wait, with a deadline, until no job is running."""
    async with asyncio.timeout(WAIT_S):
        while runner.in_flight:
            await asyncio.sleep(0.001)


async def test_deltas_stream_in_order_then_done() -> None:
    engine = ScriptedEngine({"hi": Script(tokens=("Hel", "lo", " there"))})
    runner, outbox = JobRunner({MODEL: engine}, slots=2), Outbox()
    runner.start(job("j1", "hi"), outbox.send)

    end = await outbox.end_of("j1")
    assert outbox.of("j1") == [
        TokenDelta(job_id=JobId("j1"), text="Hel", tokens=1),
        TokenDelta(job_id=JobId("j1"), text="lo", tokens=1),
        TokenDelta(job_id=JobId("j1"), text=" there", tokens=1),
        JobDone(job_id=JobId("j1"), finish_reason="stop", prompt_tokens=7, completion_tokens=3),
    ]
    assert end == outbox.sent[-1]
    await settled(runner)
    assert (runner.stats.jobs_done, runner.stats.tokens_served, runner.stats.jobs_failed) == (
        1, 3, 0
    )
    assert engine.closed == ["hi"]


async def test_logprobs_travel_with_their_token() -> None:
    engine = ScriptedEngine({"hi": Script(tokens=("a", "b"))})
    runner, outbox = JobRunner({MODEL: engine}, slots=1), Outbox()
    runner.start(job("j1", "hi", top_logprobs=2), outbox.send)
    await outbox.end_of("j1")
    deltas = [m for m in outbox.of("j1") if isinstance(m, TokenDelta)]
    assert [d.logprobs for d in deltas] == [
        (TokenLogprob(token_id=0, token="a", logprob=-0.5),),
        (TokenLogprob(token_id=1, token="b", logprob=-0.5),),
    ]


async def test_a_job_beyond_the_slots_is_refused_as_busy_not_queued() -> None:
    gate = asyncio.Event()
    engine = ScriptedEngine({"slow": Script(gate=gate), "quick": Script()})
    runner, outbox = JobRunner({MODEL: engine}, slots=1), Outbox()
    runner.start(job("j1", "slow"), outbox.send)
    runner.start(job("j2", "quick"), outbox.send)

    refusal = await outbox.end_of("j2")
    assert isinstance(refusal, JobFailed)
    assert refusal.code == "busy"
    assert outbox.of("j2") == [refusal]
    assert runner.in_flight == 1

    gate.set()
    assert isinstance(await outbox.end_of("j1"), JobDone)
    await settled(runner)
    assert engine.started == ["slow"]  # the refused job never reached the engine
    assert outbox.of("j2") == [refusal]  # nor ran later

    runner.start(job("j3", "quick"), outbox.send)
    assert isinstance(await outbox.end_of("j3"), JobDone)


async def test_a_model_the_node_does_not_serve_is_refused() -> None:
    engine = ScriptedEngine({"hi": Script()})
    runner, outbox = JobRunner({MODEL: engine}, slots=1), Outbox()
    runner.start(job("j1", "hi", model=ModelId("llama-3-8b")), outbox.send)
    refusal = await outbox.end_of("j1")
    assert isinstance(refusal, JobFailed)
    assert refusal.code == "unsupported_model"
    assert "llama-3-8b" in refusal.message
    assert engine.started == []
    assert runner.in_flight == 0


async def test_a_duplicate_job_id_is_refused_without_disturbing_the_first() -> None:
    gate = asyncio.Event()
    engine = ScriptedEngine({"slow": Script(gate=gate)})
    runner, outbox = JobRunner({MODEL: engine}, slots=2), Outbox()
    runner.start(job("j1", "slow"), outbox.send)
    runner.start(job("j1", "slow"), outbox.send)
    await outbox.until(lambda sent: any(isinstance(m, JobFailed) for m in sent))
    assert [m.code for m in outbox.sent if isinstance(m, JobFailed)] == ["bad_request"]
    gate.set()
    await outbox.until(lambda sent: any(isinstance(m, JobDone) for m in sent))
    assert outbox.texts("j1") == ["Hel", "lo", " there"]


async def test_cancel_reports_cancelled_closes_the_stream_and_frees_the_slot() -> None:
    gate = asyncio.Event()
    engine = ScriptedEngine({"slow": Script(gate=gate), "quick": Script()})
    runner, outbox = JobRunner({MODEL: engine}, slots=1), Outbox()
    runner.start(job("j1", "slow"), outbox.send)
    await outbox.until(lambda sent: len(outbox.texts("j1")) == 1)

    runner.cancel(JobId("j1"))
    end = await outbox.end_of("j1")
    assert end == JobFailed(job_id=JobId("j1"), code="cancelled", message="")
    await settled(runner)
    assert engine.closed == ["slow"]
    assert outbox.texts("j1") == ["Hel"]
    assert runner.stats.jobs_failed == 0  # the coordinator asked for it

    runner.start(job("j2", "quick"), outbox.send)
    assert isinstance(await outbox.end_of("j2"), JobDone)


async def test_a_job_cancelled_before_it_ran_still_reports_cancelled() -> None:
    engine = ScriptedEngine({"hi": Script()})
    runner, outbox = JobRunner({MODEL: engine}, slots=1), Outbox()
    runner.start(job("j1", "hi"), outbox.send)
    runner.cancel(JobId("j1"))  # the coordinator's cancel can arrive in the same read
    end = await outbox.end_of("j1")
    assert end == JobFailed(job_id=JobId("j1"), code="cancelled", message="")
    await settled(runner)
    assert outbox.texts("j1") == []


async def test_cancelling_an_unknown_job_is_harmless() -> None:
    engine = ScriptedEngine({"hi": Script()})
    runner, outbox = JobRunner({MODEL: engine}, slots=1), Outbox()
    runner.cancel(JobId("nope"))
    runner.start(job("j1", "hi"), outbox.send)
    assert isinstance(await outbox.end_of("j1"), JobDone)


@pytest.mark.parametrize(
    ("error", "code", "counts_against_node"),
    [
        (ContextLengthExceeded("prompt (900 tokens) exceeds 512"), "context_length", False),
        (RequestRejected("no messages to answer"), "bad_request", False),
        (EngineError("llama.cpp failed: out of memory"), "engine_error", True),
    ],
)
@pytest.mark.parametrize("after_tokens", [0, 2])
async def test_engine_errors_become_failure_codes(
    error: Exception, code: str, counts_against_node: bool, after_tokens: int
) -> None:
    engine = ScriptedEngine({"bad": Script(fail_with=error, fail_after=after_tokens)})
    runner, outbox = JobRunner({MODEL: engine}, slots=1), Outbox()
    runner.start(job("j1", "bad"), outbox.send)
    end = await outbox.end_of("j1")
    assert isinstance(end, JobFailed)
    assert end.code == code
    assert end.message == str(error)
    assert outbox.texts("j1") == ["Hel", "lo"][:after_tokens]
    assert outbox.of("j1")[-1] == end
    await settled(runner)
    assert runner.stats.jobs_failed == int(counts_against_node)
    assert runner.stats.jobs_done == 0

    runner.start(job("j2", "bad"), outbox.send)  # the slot is free again
    assert isinstance(await outbox.end_of("j2"), JobFailed)


async def test_drain_lets_running_jobs_finish_and_refuses_new_ones() -> None:
    engine = ScriptedEngine({
        "one": Script(tokens=tuple("abcdefgh"), pace_s=0.01),
        "two": Script(tokens=tuple("ijklmnop"), pace_s=0.01),
        "late": Script(),
    })
    runner, outbox = JobRunner({MODEL: engine}, slots=2), Outbox()
    runner.start(job("j1", "one"), outbox.send)
    runner.start(job("j2", "two"), outbox.send)
    await outbox.until(lambda sent: bool(outbox.texts("j1") and outbox.texts("j2")))

    draining = asyncio.create_task(runner.drain(grace_s=WAIT_S))
    async with asyncio.timeout(WAIT_S):
        while not runner.draining:
            await asyncio.sleep(0)
    runner.start(job("j3", "late"), outbox.send)
    await draining

    assert runner.in_flight == 0
    assert outbox.of("j1")[-1] == JobDone(
        job_id=JobId("j1"), finish_reason="stop", prompt_tokens=7, completion_tokens=8
    )
    assert "".join(outbox.texts("j1")) == "abcdefgh"
    assert "".join(outbox.texts("j2")) == "ijklmnop"
    late = await outbox.end_of("j3")
    assert isinstance(late, JobFailed)
    assert late.code == "draining"
    assert "late" not in engine.started


async def test_drain_cancels_what_outlives_the_grace() -> None:
    stuck = asyncio.Event()  # never set
    engine = ScriptedEngine({"stuck": Script(gate=stuck), "quick": Script()})
    runner, outbox = JobRunner({MODEL: engine}, slots=2), Outbox()
    runner.start(job("j1", "stuck"), outbox.send)
    runner.start(job("j2", "quick"), outbox.send)
    await outbox.until(lambda sent: len(outbox.texts("j1")) == 1)

    async with asyncio.timeout(WAIT_S):
        await runner.drain(grace_s=0.2)

    assert runner.in_flight == 0
    assert isinstance(outbox.of("j2")[-1], JobDone)
    assert outbox.of("j1")[-1] == JobFailed(job_id=JobId("j1"), code="cancelled", message="")
    assert sorted(engine.closed) == ["quick", "stuck"]


async def test_drain_with_nothing_running_returns_at_once() -> None:
    runner = JobRunner({MODEL: ScriptedEngine({})}, slots=1)
    async with asyncio.timeout(1):
        await runner.drain(grace_s=60)
    assert runner.draining


async def test_the_speed_is_measured_from_each_jobs_first_token_to_its_end() -> None:
    engine = ScriptedEngine({"hi": Script(tokens=("a", "b", "c", "d")), "one": Script(("x",))})
    readings = iter([10.0, 11.5, 20.0, 20.5])
    runner, outbox = JobRunner({MODEL: engine}, slots=1, clock=lambda: next(readings)), Outbox()
    assert runner.stats.measured_tok_s is None
    runner.start(job("j1", "hi"), outbox.send)
    await outbox.end_of("j1")
    assert runner.stats.measured_tok_s == pytest.approx(3 / 1.5)  # 3 tokens after the first
    runner.start(job("j2", "one"), outbox.send)  # a single token says nothing about speed
    await outbox.end_of("j2")
    await settled(runner)
    assert (runner.stats.decode_tokens, runner.stats.decode_s) == (3, 1.5)
