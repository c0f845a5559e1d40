"""One consumer completion, carried to the end across whichever nodes it takes.

``stream_completion`` chooses a node, dispatches the job and yields the text as it arrives. A node
that fails before its first token is replaced transparently (never the same node twice); a node
that fails after streaming is replaced by one that resumes from the text already delivered, so
the consumer sees one unbroken answer. Only when no candidate is left does it raise. Which node
comes next, and when to give up, is decided in ``gateway/failover.py``; this module carries it out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Set
from contextlib import aclosing, suppress
from dataclasses import dataclass, field

from coordinator.errors import (
    ContextLengthExceeded,
    NoCapacity,
    QueueFull,
    UpstreamFailed,
)
from coordinator.gateway.context import ContextBudget, context_refused
from coordinator.gateway.failover import (
    Attempt,
    AttemptEnd,
    EndAtLength,
    FailoverRules,
    GiveUp,
    TooLong,
    next_attempt,
    when_no_node,
)
from coordinator.gateway.needs import GatewayNeeds
from coordinator.hub.calls import AttemptFailed, new_job_id
from coordinator.hub.payees import payee_of
from protocol.chat import ChatMessage, FunctionTool, SamplingParams, TokenLogprob
from protocol.ids import ModelId, NodeId
from protocol.messages import FinishReason, Job, TokenDelta


@dataclass(frozen=True, slots=True)
class CompletionSpec:
    model: ModelId
    messages: tuple[ChatMessage, ...]
    params: SamplingParams
    top_logprobs: int
    fill_context: bool = False
    """max_tokens was left unset: ``params.max_tokens`` is a ceiling, each job asks for what
    its node's context leaves (:class:`~coordinator.gateway.context.ContextBudget`)."""
    prompt_floor: int = 0
    """The fewest tokens the prompt can take (``gateway.context.prompt_token_floor``)."""
    raw_prompt: bool = False
    """The one message is the prompt as written, not rendered by the chat template."""
    tools: tuple[FunctionTool, ...] = ()
    """The functions the model may call (its answer's shape is ``params.json_schema``)."""
    consumer_account: int | None = None
    """Who pays: a node paying its own operator earns no points (``paid_call`` sets it)."""

    @property
    def budget(self) -> ContextBudget:
        return ContextBudget(self.prompt_floor, self.params.max_tokens, self.fill_context)


@dataclass(frozen=True, slots=True)
class Piece:
    """Text delivered to the consumer, and the node that produced it."""

    node_id: NodeId
    text: str
    tokens: int
    logprobs: tuple[TokenLogprob, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of the completion, and the node that ended it (it answered, even if with no
    token at all: an empty answer is still its answer)."""

    node_id: NodeId
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    tokens_by_node: dict[NodeId, int]


@dataclass
class _Progress:
    """What the consumer was sent so far, and the attempts that ended without an answer."""

    text: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    tokens_by_node: dict[NodeId, int] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)


async def stream_completion(
    services: GatewayNeeds, spec: CompletionSpec
) -> AsyncGenerator[Piece | Finished, None]:
    """Yield the completion's pieces, then one :class:`Finished`; raises a CoordinatorError.

    Each attempt's end is recorded and :func:`~coordinator.gateway.failover.next_attempt`
    decides what follows; this loop only carries it out."""
    progress = _Progress()
    rules = FailoverRules(
        max_tokens=spec.params.max_tokens, min_context=spec.budget.min_context,
        queue_wait_s=services.settings.queue_wait_s,
    )
    while True:
        step = next_attempt(progress.attempts, rules)
        if isinstance(step, GiveUp):
            raise UpstreamFailed(step.message)
        if isinstance(step, TooLong):
            raise context_refused(step.context, step.message)
        if isinstance(step, EndAtLength):
            yield Finished(
                step.node_id, "length", 0, progress.completion_tokens, progress.tokens_by_node
            )
            return
        if step.pause_s:
            await asyncio.sleep(step.pause_s)
        try:
            node_id = await _choose_or_wait(
                services, spec.model, step.exclude, step.min_context
            )
        except (NoCapacity, QueueFull) as exc:
            interrupted = when_no_node(progress.attempts, rules, exc.message)
            if interrupted is None:
                raise  # unmet demand: the gateway counts it when the request is funded
            raise UpstreamFailed(interrupted.message) from exc
        node_context = services.router.context_of(node_id, spec.model)
        job = _job_for(spec, progress, services.settings.job_top_logprobs, node_context)
        deltas, attempt_tokens = 0, 0
        end, reason = AttemptEnd.FAILED, None
        try:
            self_dealt = spec.consumer_account is not None and (
                payee_of(services, node_id) == spec.consumer_account
            )
            async with aclosing(
                services.calls.run(node_id, job, self_dealt=self_dealt)
            ) as events:
                async for event in events:
                    if isinstance(event, TokenDelta):
                        deltas += 1
                        attempt_tokens += event.tokens
                        progress.text.append(event.text)
                        progress.completion_tokens += event.tokens
                        progress.tokens_by_node[node_id] = (
                            progress.tokens_by_node.get(node_id, 0) + event.tokens
                        )
                        yield Piece(node_id, event.text, event.tokens, event.logprobs)
                    else:
                        # the call counted this attempt itself; never more than it relayed
                        overcount = attempt_tokens - event.completion_tokens
                        if overcount > 0:
                            progress.completion_tokens -= overcount
                            progress.tokens_by_node[node_id] -= overcount
                        yield Finished(
                            node_id=node_id,
                            finish_reason=event.finish_reason,
                            prompt_tokens=event.prompt_tokens,
                            completion_tokens=progress.completion_tokens,
                            tokens_by_node=progress.tokens_by_node,
                        )
                        return
        except ContextLengthExceeded as refusal:
            end, reason = AttemptEnd.CONTEXT_TOO_SMALL, refusal.message
        except AttemptFailed as failure:
            end = AttemptEnd.NO_FREE_SLOT if failure.refused else AttemptEnd.FAILED
            reason = failure.reason
        progress.attempts.append(
            Attempt(
                node_id=node_id, end=end, ended_at=services.clock.monotonic(), reason=reason,
                deltas=deltas, tokens=attempt_tokens, node_context=node_context,
                largest_context=services.router.largest_context(spec.model),
            )
        )


def _job_for(
    spec: CompletionSpec, progress: _Progress, top_logprobs: int, node_context: int | None
) -> Job:
    # Every job asks for the same logprobs whatever the consumer wanted, so paid jobs and probes
    # look alike; the gateway strips what the consumer did not ask for.
    params = spec.params
    max_tokens = spec.budget.job_max_tokens(node_context, progress.completion_tokens)
    if max_tokens != params.max_tokens:
        params = params.model_copy(update={"max_tokens": max_tokens})
    return Job(
        job_id=new_job_id(), model=spec.model, messages=spec.messages, params=params,
        top_logprobs=max(top_logprobs, spec.top_logprobs), continuation="".join(progress.text),
        fill_context=spec.fill_context, raw_prompt=spec.raw_prompt, tools=spec.tools,
    )


async def _choose_or_wait(
    services: GatewayNeeds, model: ModelId, tried: Set[NodeId], min_context: int = 0
) -> NodeId:
    """A node for the next attempt whose context holds ``min_context`` tokens, waiting a
    bounded time while every such candidate is busy."""
    settings, router = services.settings, services.router
    deadline = services.clock.monotonic() + settings.queue_wait_s
    queue = services.waiting.setdefault(model, 0)
    while True:
        node_id = router.choose(
            model, now=services.clock.monotonic(), rng=services.rng, exclude=tried,
            min_context=min_context,
        )
        if node_id is not None:
            router.job_started(node_id, now=services.clock.monotonic())
            return node_id
        serving = [n for n in router.live_nodes_serving(model) if n not in tried]
        if not serving:
            raise NoCapacity(
                f"no live node serves {model!r} right now",
                retry_after_s=settings.no_capacity_retry_after_s,
            )
        contexts = [router.context_of(n, model) for n in serving]
        if all(c is not None and c < min_context for c in contexts):
            raise context_refused(
                max(c for c in contexts if c is not None),
                f"it needs a context of at least {min_context} tokens",
            )
        remaining = deadline - services.clock.monotonic()
        if remaining <= 0:
            raise NoCapacity(
                f"every node serving {model!r} is busy",
                retry_after_s=settings.no_capacity_retry_after_s,
            )
        if queue >= settings.queue_length:
            raise QueueFull(
                f"too many requests waiting for {model!r}",
                retry_after_s=settings.no_capacity_retry_after_s,
            )
        services.waiting[model] = services.waiting.get(model, 0) + 1
        try:
            changed = services.hub.changed
            with suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await changed.wait()
        finally:
            services.waiting[model] -= 1
        queue = services.waiting[model]
