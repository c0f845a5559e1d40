"""What a completion does after each attempt: a pure decision over the attempts so far.

An attempt is one job on one node. After each one ends without an answer, :func:`next_attempt`
reads the whole history and says what comes next: another node (excluding those tried, resuming
from the text already delivered or starting over), a pause before choosing again (a node that had
no free slot), an end at ``max_tokens``, or giving up. :func:`when_no_node` says what it means
that no node could be chosen at all. The loop in ``gateway/completion.py`` only carries these out.

The rules:

- a node that fails is never tried again for the same completion;
- a node that refused for want of a slot was not tried: it stays a candidate, and the completion
  waits for a slot (pausing a little longer each time) for as long as a queued request would,
  counted from the first refusal;
- a node whose context was too small for the prompt sends the next attempt to a larger context,
  and when no live context is larger the request is refused as too long;
- before any text was delivered, a failure is retried on another node at most
  ``MAX_RETRIES_BEFORE_FIRST_TOKEN`` times; after, the answer resumes on another node at most
  ``MAX_RESUMES`` times, and one that already has ``max_tokens`` ends there ("length").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from protocol.ids import NodeId

MAX_RETRIES_BEFORE_FIRST_TOKEN = 2
MAX_RESUMES = 2
REFUSAL_PAUSE_S = 0.005  # after a node said "no free slot", growing with each refusal
MAX_REFUSAL_PAUSE_S = 0.2
NO_NODE_REASON = "no node could serve the request"


class AttemptEnd(Enum):
    """How an attempt ended without an answer."""

    FAILED = "failed"
    """The node failed, left, timed out or stopped mid-answer."""
    NO_FREE_SLOT = "no_free_slot"
    """The node refused the job for want of a free slot: nothing was tried."""
    CONTEXT_TOO_SMALL = "context_too_small"
    """The prompt did not fit the node's context."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt that ended without an answer, as the decision needs it."""

    node_id: NodeId
    end: AttemptEnd
    ended_at: float
    """The monotonic clock when it ended."""
    reason: str | None = None
    """Why it failed (the node's failure, or the context refusal's message); None keeps the
    previous attempt's reason."""
    deltas: int = 0
    """Token deltas it delivered to the consumer."""
    tokens: int = 0
    """Tokens those deltas counted."""
    node_context: int | None = None
    """The context the node serves the model with, if it said."""
    largest_context: int | None = None
    """The largest context a live node serves the model with, when the attempt ended."""


@dataclass(frozen=True, slots=True)
class FailoverRules:
    """What a completion allows itself: its budget and how long it may wait for a slot."""

    max_tokens: int
    min_context: int
    """The smallest context worth trying at first (the prompt's floor and ``max_tokens``)."""
    queue_wait_s: float
    """How long refusals may keep the completion waiting, from the first one."""


@dataclass(frozen=True, slots=True)
class TryNode:
    """Choose a node and run the job there."""

    exclude: frozenset[NodeId]
    """Nodes already tried: never chosen again."""
    min_context: int
    """The smallest context the node must serve the model with."""
    resume: bool
    """Text was delivered: the next node continues it rather than starting over."""
    pause_s: float = 0.0
    """Wait this long before choosing (a refusing node's slot may be closing)."""


@dataclass(frozen=True, slots=True)
class EndAtLength:
    """The answer already holds ``max_tokens``: it ends there, as if the node had stopped."""

    node_id: NodeId
    """The node of the last attempt."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No further attempt: the completion fails with ``message`` (an upstream failure)."""

    message: str


@dataclass(frozen=True, slots=True)
class TooLong:
    """No live node's context holds the prompt: the request is refused as too long."""

    context: int | None
    message: str


NextAttempt = TryNode | EndAtLength | GiveUp | TooLong


@dataclass(slots=True)
class _Standing:
    """The history folded: what the next decision depends on."""

    min_context: int
    tried: set[NodeId]
    delivered: bool = False
    tokens: int = 0
    last_error: str = NO_NODE_REASON
    failures_before_first_token: int = 0
    resumes: int = 0
    refusals: int = 0
    refused_since: float | None = None


def next_attempt(history: Sequence[Attempt], rules: FailoverRules) -> NextAttempt:
    """What follows ``history`` (the attempts so far, oldest first, none of them answered)."""
    standing = _Standing(min_context=rules.min_context, tried=set())
    pause_s = 0.0
    for attempt in history:
        decided = _after(attempt, standing, rules)
        if not isinstance(decided, float):
            return decided
        pause_s = decided
    return TryNode(
        exclude=frozenset(standing.tried), min_context=standing.min_context,
        resume=standing.delivered, pause_s=pause_s,
    )


def when_no_node(history: Sequence[Attempt], rules: FailoverRules, why: str) -> GiveUp | None:
    """What it means that no node could be chosen (``why``) after ``history``: None when
    nothing was delivered or tried (unmet demand, reported as such), else an interruption."""
    standing = _Standing(min_context=rules.min_context, tried=set())
    for attempt in history:
        _after(attempt, standing, rules)
    if not standing.delivered and not standing.tried:
        return None
    return GiveUp(
        f"generation interrupted ({standing.last_error}) and no other node could take over: "
        f"{why}"
    )


def _after(
    attempt: Attempt, standing: _Standing, rules: FailoverRules
) -> float | EndAtLength | GiveUp | TooLong:
    """Fold ``attempt`` into ``standing``: the pause before the next choice, or the end."""
    standing.tried.add(attempt.node_id)
    standing.delivered = standing.delivered or attempt.deltas > 0
    standing.tokens += attempt.tokens
    if attempt.end is AttemptEnd.CONTEXT_TOO_SMALL:
        # The prompt is longer than the gateway's floor: only a larger context can hold it.
        context, largest = attempt.node_context, attempt.largest_context
        if context is None or largest is None or largest <= context:
            return TooLong(largest or context, attempt.reason or "")
        standing.min_context = max(standing.min_context, context + 1)
        return 0.0
    if attempt.reason is not None:
        standing.last_error = attempt.reason
    if attempt.end is AttemptEnd.NO_FREE_SLOT and _may_wait(attempt, standing, rules):
        standing.refusals += 1
        standing.tried.discard(attempt.node_id)
        return min(REFUSAL_PAUSE_S * standing.refusals, MAX_REFUSAL_PAUSE_S)
    if standing.delivered:
        standing.resumes += 1
        if standing.resumes > MAX_RESUMES:
            return GiveUp(f"generation interrupted: {standing.last_error}")
        if standing.tokens >= rules.max_tokens:
            return EndAtLength(attempt.node_id)
    else:
        standing.failures_before_first_token += 1
        if standing.failures_before_first_token > MAX_RETRIES_BEFORE_FIRST_TOKEN:
            return GiveUp(f"every node tried failed: {standing.last_error}")
    return 0.0


def _may_wait(attempt: Attempt, standing: _Standing, rules: FailoverRules) -> bool:
    """Whether the completion may wait on after another refusal: for at most ``queue_wait_s``
    from the first one, the bound a request waiting in the queue has. The pause grows with
    each refusal and is not cut short by capacity news: every refusal is news, and requests
    woken by each other's refusals would spin through their waits in a few milliseconds."""
    if standing.refused_since is None:
        standing.refused_since = attempt.ended_at
    return attempt.ended_at - standing.refused_since <= rules.queue_wait_s
