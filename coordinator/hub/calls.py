"""Calling a node: one job on one node, its events back, and every outcome recorded.

:class:`NodeCalls` is the one way a job reaches a node, whoever sends it: the gateway's consumer
calls, the probe scheduler's probes and the jobs another replica relays. A node connected to this
replica is reached through the hub; one connected to another replica through the bus, where its
owner runs the job with this same code and judges the node's outcome. Either way the node cannot
tell a probe from a paid job, and is paid on the coordinator's counts, never on its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from coordinator.bus.base import Bus
from coordinator.channel import ChannelEvent, DispatchFailed, JobCutOff
from coordinator.clock import Clock
from coordinator.errors import ContextLengthExceeded, InvalidRequest
from coordinator.hub.live import NodeHub
from coordinator.hub.observation import JobObservation, Observer
from coordinator.routing import Outcome, Router
from coordinator.routing.throughput import ThroughputBook, generation_speed
from protocol.chat import TokenLogprob
from protocol.ids import JobId, ModelId, NodeId
from protocol.messages import NEUTRAL_FAILURES, Job, JobDone, JobFailed, TokenDelta, TokenScores

log = logging.getLogger(__name__)

PROMPT_TEMPLATE_ALLOWANCE = 256
"""Tokens a chat template may add around the messages: the most a node may count above the
rendered prompt's UTF-8 bytes (no tokenizer makes more tokens than bytes, plus its markers)."""
COMPLETION_TOKEN_ALLOWANCE = 4
"""Tokens a completion may count beyond its text's bytes (an end-of-text token, bytes of a
character held back at the end)."""
TOOL_TURNS_ALLOWANCE = 2048
"""Bytes a node may add to describe tools and how to call them (protocol/tool_turns.py)."""
_job_counter = itertools.count()


def new_job_id() -> JobId:
    return JobId(f"job-{secrets.token_hex(8)}-{next(_job_counter)}")


def prompt_token_bound(job: Job) -> int:
    """The most prompt tokens a node may claim for ``job`` without a tokenizer to check it."""
    text_bytes = sum(len(m.content.encode()) + len(m.role) for m in job.messages)
    if not job.plain_chat:  # tools, their description and earlier calls are written out
        text_bytes += TOOL_TURNS_ALLOWANCE + sum(
            len(t.model_dump_json().encode()) for t in job.tools
        ) + sum(len(m.model_dump_json().encode()) for m in job.messages if m.tool_calls)
    return text_bytes + len(job.continuation.encode()) + PROMPT_TEMPLATE_ALLOWANCE * (
        1 + len(job.messages)
    )


def counted_done(done: JobDone, job: Job, relayed_tokens: int, text_bytes: int) -> tuple[
    JobDone, list[str]
]:
    """``done`` with the coordinator's own counts, and the node's claims they contradict.

    Completion tokens are the tokens of the deltas relayed (at most the text's bytes plus a
    small allowance); prompt tokens are the node's report, capped at the rendered prompt's bound.
    """
    faults: list[str] = []
    completion = min(relayed_tokens, text_bytes + COMPLETION_TOKEN_ALLOWANCE)
    if completion != relayed_tokens:
        faults.append(f"relayed {relayed_tokens} tokens for {text_bytes} bytes of text")
    if done.completion_tokens != relayed_tokens:
        faults.append(
            f"claimed {done.completion_tokens} completion tokens, relayed {relayed_tokens}"
        )
    bound = prompt_token_bound(job)
    prompt = min(done.prompt_tokens, bound)
    if prompt != done.prompt_tokens:
        faults.append(f"claimed {done.prompt_tokens} prompt tokens, at most {bound} possible")
    counted = done.model_copy(update={"prompt_tokens": prompt, "completion_tokens": completion})
    return counted, faults


class AttemptFailed(Exception):
    def __init__(self, reason: str, outcome: Outcome, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome
        self.refused = refused
        """A remote node's owner had no free slot after all: choose again, nothing was tried."""


@dataclass(frozen=True, slots=True)
class CallTimeouts:
    first_token_s: float
    between_tokens_s: float


@dataclass(frozen=True, slots=True)
class NodeCalls:
    hub: NodeHub
    router: Router
    bus: Bus
    clock: Clock
    timeouts: CallTimeouts
    throughput: ThroughputBook
    observers: list[Observer]
    """Told of every attempt; shared with whoever registers one after the calls are built."""

    async def run(
        self, node_id: NodeId, job: Job, *, probe: bool = False, observe: bool = True,
        self_dealt: bool = False,
    ) -> AsyncGenerator[TokenDelta | JobDone, None]:
        """The job's events from one node; raises ``AttemptFailed`` and records every outcome.

        The caller has counted the job in with ``router.job_started``; this counts it out, and
        tells every observer what the attempt delivered (unless ``observe`` is off: a job relayed
        from another replica is observed there).
        """
        router, clock = self.router, self.clock
        owner = router.owner(node_id) if node_id in router else None
        # Neutral unless the node is to blame: a consumer who leaves costs the node nothing.
        outcome = Outcome.NEUTRAL
        text: list[str] = []
        logprobs: list[TokenLogprob] = []
        tokens, first_token_at, last_token_at = 0, 0.0, 0.0
        refused = False
        try:
            try:
                if owner is None:
                    channel = await self.hub.dispatch(node_id, job)
                else:
                    channel = await self.bus.dispatch(owner, node_id, job)
            except DispatchFailed as exc:
                raise AttemptFailed(
                    "node left before the job could start", Outcome.NEUTRAL
                ) from exc
            timeout = self.timeouts.first_token_s
            while True:
                event = await _next_event(channel, timeout)
                if event is None:
                    raise AttemptFailed("node timed out", Outcome.FAILURE)
                if isinstance(event, JobCutOff):
                    raise AttemptFailed(event.reason, Outcome.FAILURE)
                if isinstance(event, JobFailed):
                    refused = event.code == "busy" and not tokens
                    raise _failure_of(event, refused=refused)
                if isinstance(event, TokenScores):
                    raise AttemptFailed("node answered a generation with scores", Outcome.FAILURE)
                if isinstance(event, JobDone):
                    outcome = Outcome.SUCCESS
                    text_bytes = sum(len(piece.encode()) for piece in text)
                    counted, faults = counted_done(event, job, tokens, text_bytes)
                    if faults:
                        self._record_faults(node_id, faults)
                        tokens = counted.completion_tokens
                    yield counted
                    return
                last_token_at = clock.monotonic()
                if not tokens:
                    first_token_at = last_token_at
                tokens += event.tokens
                text.append(event.text)
                logprobs.extend(event.logprobs)
                timeout = self.timeouts.between_tokens_s
                yield event
        except AttemptFailed as failure:
            outcome = failure.outcome
            raise
        finally:
            if outcome is not Outcome.SUCCESS:
                if owner is None:
                    await self.hub.cancel(node_id, job.job_id)
                else:
                    await self.bus.cancel(owner, job.job_id)
            speed = None
            if owner is not None:  # its owner measures it and feeds its breaker
                speed = generation_speed(tokens, first_token_at, last_token_at)
                if refused:  # counted full until its owner's next report
                    router.mark_full(node_id, now=clock.monotonic())
                else:
                    router.release_remote(node_id, now=clock.monotonic())
            else:
                if outcome is Outcome.SUCCESS:
                    speed = self._record_speed(
                        node_id, job.model, tokens, first_token_at, last_token_at
                    )
                router.job_finished(
                    node_id, outcome, now=clock.monotonic(), wall_now=clock.now().timestamp(),
                    probe=probe,
                )
            self.hub.notify_capacity()
            if observe:
                self._tell_observers(
                    JobObservation(
                        node_id=node_id, job=job, probe=probe, outcome=outcome,
                        text="".join(text), logprobs=tuple(logprobs), tokens=tokens, tok_s=speed,
                        finished_at=clock.now().timestamp(), self_dealt=self_dealt,
                    ),
                )

    def _record_faults(self, node_id: NodeId, faults: list[str]) -> None:
        """A node's claims that its relayed events contradict: logged and kept on the live node
        (it is paid on the coordinator's counts, never on these)."""
        node = self.hub.get(node_id)
        for fault in faults:
            log.warning("node %s fault: %s", node_id, fault)
            if node is not None:
                node.record_fault(fault)

    def _tell_observers(self, observation: JobObservation) -> None:
        for observer in self.observers:
            try:
                observer(observation)
            except Exception:  # an observer's bug must never break a consumer's call
                log.exception("job observer failed")

    def _record_speed(
        self, node_id: NodeId, model: ModelId, tokens: int, first: float, last: float
    ) -> float | None:
        speed = generation_speed(tokens, first, last)
        if speed is None:
            return None
        sustained = self.throughput.record(node_id, model, speed)
        if node_id in self.router:
            self.router.record_measurement(node_id, sustained, now=self.clock.monotonic())
        return speed


def _failure_of(event: JobFailed, *, refused: bool) -> Exception:
    """What a node's refusal of a job means to the caller."""
    if refused:
        # Nothing was tried: the node's slot was still closing when this job reached it (an
        # agent frees it after its last frame, a cancel lands after the next job), or another
        # replica's view of it was stale.
        return AttemptFailed("node had no free slot", Outcome.NEUTRAL, refused=True)
    if event.code == "context_length":
        return ContextLengthExceeded(event.message, param="messages")
    if event.code in NEUTRAL_FAILURES:
        return InvalidRequest(event.message, param=event.param or "messages")
    neutral = event.code in ("busy", "draining", "cancelled", "unsupported_model")
    return AttemptFailed(
        f"node failed: {event.code}", Outcome.NEUTRAL if neutral else Outcome.FAILURE
    )


async def _next_event(channel: asyncio.Queue[ChannelEvent], timeout: float) -> ChannelEvent | None:
    try:
        return channel.get_nowait()
    except asyncio.QueueEmpty:
        pass
    try:
        async with asyncio.timeout(timeout):
            return await channel.get()
    except TimeoutError:
        return None
