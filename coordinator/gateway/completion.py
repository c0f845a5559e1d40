"""One consumer completion, carried to the end across whichever nodes it takes.

``stream_completion`` chooses a node, dispatches the job and yields the text as it arrives. A node
that fails before its first token is replaced transparently (never the same node twice); a node
that fails after streaming is replaced by one that resumes from the text already delivered, so
the consumer sees one unbroken answer. Only when no candidate is left does it raise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing, suppress
from dataclasses import dataclass, field

from coordinator.economy.billing import payee_of
from coordinator.errors import (
    ContextLengthExceeded,
    NoCapacity,
    QueueFull,
    UpstreamFailed,
)
from coordinator.gateway.context import ContextBudget, context_refused
from coordinator.hub.calls import AttemptFailed, new_job_id
from coordinator.services import Services
from protocol.chat import ChatMessage, FunctionTool, SamplingParams, TokenLogprob
from protocol.ids import ModelId, NodeId
from protocol.messages import FinishReason, Job, TokenDelta

MAX_RETRIES_BEFORE_FIRST_TOKEN = 2
MAX_RESUMES = 2
REFUSAL_PAUSE_S = 0.005  # after a node said "no free slot", growing with each refusal
MAX_REFUSAL_PAUSE_S = 0.2
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
    text: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    tokens_by_node: dict[NodeId, int] = field(default_factory=dict)
    tried: set[NodeId] = field(default_factory=set)
    failures_before_first_token: int = 0
    resumes: int = 0
    refusals: int = 0
    refused_since: float | None = None  # when nodes first refused it for want of a slot
    min_context: int = 0  # the smallest context worth trying: raised by each context refusal


async def stream_completion(
    services: Services, spec: CompletionSpec
) -> AsyncGenerator[Piece | Finished, None]:
    """Yield the completion's pieces, then one :class:`Finished`; raises a CoordinatorError."""
    progress = _Progress(min_context=spec.budget.min_context)
    last_error = "no node could serve the request"
    while True:
        try:
            node_id = await _choose_or_wait(
                services, spec.model, progress.tried, progress.min_context
            )
        except (NoCapacity, QueueFull) as exc:
            if not progress.text and not progress.tried:
                raise  # unmet demand: the gateway counts it when the request is funded
            raise UpstreamFailed(
                f"generation interrupted ({last_error}) and no other node could take over: "
                f"{exc.message}"
            ) from exc
        progress.tried.add(node_id)
        node_context = services.router.context_of(node_id, spec.model)
        job = _job_for(spec, progress, services.settings.job_top_logprobs, node_context)
        started = False
        attempt_tokens = 0
        try:
            self_dealt = spec.consumer_account is not None and (
                payee_of(services, node_id) == spec.consumer_account
            )
            async with aclosing(
                services.calls.run(node_id, job, self_dealt=self_dealt)
            ) as events:
                async for event in events:
                    if isinstance(event, TokenDelta):
                        started = True
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
            # The prompt is longer than the gateway's floor: only a larger context can hold it.
            largest = services.router.largest_context(spec.model)
            if node_context is None or largest is None or largest <= node_context:
                raise context_refused(largest or node_context, refusal.message) from None
            progress.min_context = max(progress.min_context, node_context + 1)
            continue
        except AttemptFailed as failure:
            last_error = failure.reason
            if failure.refused and _may_wait_after_refusal(services, progress):
                # A node that refused for want of a slot was not tried: it stays a candidate
                # (perhaps the only one left), and the job waits for a slot like any other,
                # as long as a queued request would.
                progress.refusals += 1
                progress.tried.discard(node_id)
                await _pause_after_refusal(progress.refusals)
                continue
        if progress.text:
            progress.resumes += 1
            if progress.resumes > MAX_RESUMES:
                raise UpstreamFailed(f"generation interrupted: {last_error}")
            if progress.completion_tokens >= spec.params.max_tokens:
                yield Finished(
                    node_id, "length", 0, progress.completion_tokens, progress.tokens_by_node
                )
                return
        elif not started:
            progress.failures_before_first_token += 1
            if progress.failures_before_first_token > MAX_RETRIES_BEFORE_FIRST_TOKEN:
                raise UpstreamFailed(f"every node tried failed: {last_error}")


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


def _may_wait_after_refusal(services: Services, progress: _Progress) -> bool:
    """Whether the request may wait on after another refusal: for at most ``queue_wait_s``
    from the first one, the bound a request waiting in the queue has."""
    now = services.clock.monotonic()
    if progress.refused_since is None:
        progress.refused_since = now
    return now - progress.refused_since <= services.settings.queue_wait_s


async def _pause_after_refusal(refusals: int) -> None:
    """A moment for the refusing node's slot to close before choosing again, growing with each
    refusal (capped). Not cut short by capacity news: every refusal is news, and requests
    woken by each other's refusals would spin through their waits in a few milliseconds."""
    await asyncio.sleep(min(REFUSAL_PAUSE_S * refusals, MAX_REFUSAL_PAUSE_S))


async def _choose_or_wait(
    services: Services, model: ModelId, tried: set[NodeId], min_context: int = 0
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
