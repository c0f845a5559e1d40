"""The next attempt, decided from the attempts so far: a table of histories and what follows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.gateway.failover import (
    MAX_REFUSAL_PAUSE_S,
    MAX_RESUMES,
    MAX_RETRIES_BEFORE_FIRST_TOKEN,
    NO_NODE_REASON,
    REFUSAL_PAUSE_S,
    Attempt,
    AttemptEnd,
    EndAtLength,
    FailoverRules,
    GiveUp,
    NextAttempt,
    TooLong,
    TryNode,
    next_attempt,
    when_no_node,
)
from protocol.ids import NodeId

A, B, C, D = NodeId("a"), NodeId("b"), NodeId("c"), NodeId("d")
RULES = FailoverRules(max_tokens=100, min_context=64, queue_wait_s=10.0)


def failed(node: NodeId, at: float = 0.0, reason: str | None = "node timed out", *,
           tokens: int = 0) -> Attempt:
    return Attempt(
        node, AttemptEnd.FAILED, at, reason, deltas=1 if tokens else 0, tokens=tokens
    )


def no_slot(node: NodeId, at: float = 0.0) -> Attempt:
    return Attempt(node, AttemptEnd.NO_FREE_SLOT, at, "node had no free slot")


def too_small(node: NodeId, context: int | None, largest: int | None) -> Attempt:
    return Attempt(
        node, AttemptEnd.CONTEXT_TOO_SMALL, 0.0, "prompt too long",
        node_context=context, largest_context=largest,
    )


def fresh(*exclude: NodeId, min_context: int = 64, pause_s: float = 0.0) -> TryNode:
    return TryNode(frozenset(exclude), min_context, resume=False, pause_s=pause_s)


def resume(*exclude: NodeId) -> TryNode:
    return TryNode(frozenset(exclude), 64, resume=True)


TABLE: list[tuple[str, list[Attempt], NextAttempt]] = [
    ("the first attempt goes anywhere", [], fresh()),
    ("a failure before the first token retries elsewhere", [failed(A)], fresh(A)),
    ("two such failures still retry", [failed(A), failed(B)], fresh(A, B)),
    (
        "the third gives up, naming the last failure",
        [failed(A), failed(B), failed(C, reason="node failed: crashed")],
        GiveUp("every node tried failed: node failed: crashed"),
    ),
    (
        "a failure without a reason keeps the previous one",
        [failed(A, reason="node left"), failed(B), failed(C, reason=None)],
        GiveUp("every node tried failed: node timed out"),
    ),
    ("a failure after text resumes elsewhere", [failed(A, tokens=5)], resume(A)),
    (
        "text once delivered makes every later failure a resume",
        [failed(A, tokens=5), failed(B)], resume(A, B),
    ),
    (
        "the third interruption gives up",
        [failed(A, tokens=5), failed(B, tokens=5), failed(C, tokens=5, reason="node left")],
        GiveUp("generation interrupted: node left"),
    ),
    (
        "an answer that already holds max_tokens ends there",
        [failed(A, tokens=60), failed(B, tokens=40)], EndAtLength(B),
    ),
    (
        "too many resumes outrank the full answer",
        [failed(A, tokens=1), failed(B, tokens=1), failed(C, tokens=98)],
        GiveUp("generation interrupted: node timed out"),
    ),
    (
        "a node without a free slot stays a candidate, after a pause",
        [no_slot(A)], fresh(pause_s=REFUSAL_PAUSE_S),
    ),
    (
        "each refusal pauses a little longer",
        [no_slot(A, 0.0), no_slot(A, 1.0), no_slot(B, 2.0)], fresh(pause_s=3 * REFUSAL_PAUSE_S),
    ),
    (
        "the pause is capped",
        [no_slot(A, float(i) / 10) for i in range(60)], fresh(pause_s=MAX_REFUSAL_PAUSE_S),
    ),
    (
        "refusals wait as long as a queued request, from the first",
        [no_slot(A, 5.0), no_slot(A, 15.0)], fresh(pause_s=2 * REFUSAL_PAUSE_S),
    ),
    (
        "past the queue's wait a refusal counts as a failure",
        [no_slot(A, 5.0), no_slot(A, 15.001)], fresh(A),
    ),
    (
        "refusals do not count against the retries",
        [failed(A), failed(B), no_slot(C), no_slot(C)], fresh(A, B, pause_s=2 * REFUSAL_PAUSE_S),
    ),
    (
        "a context too small asks for a larger one",
        [too_small(A, 2048, 8192)], fresh(A, min_context=2049),
    ),
    (
        "the smallest context never shrinks",
        [too_small(A, 2048, 8192), too_small(B, 1024, 8192)], fresh(A, B, min_context=2049),
    ),
    (
        "context refusals count neither as failures nor resumes",
        [failed(A), failed(B), too_small(C, 2048, 8192)], fresh(A, B, C, min_context=2049),
    ),
    (
        "no larger context: the request is too long for the largest",
        [too_small(A, 8192, 8192)], TooLong(8192, "prompt too long"),
    ),
    (
        "a node that did not say its context: too long, at the largest",
        [too_small(A, None, 4096)], TooLong(4096, "prompt too long"),
    ),
    (
        "no live node left to say a largest: too long, at the node's",
        [too_small(A, 2048, None)], TooLong(2048, "prompt too long"),
    ),
]


@pytest.mark.parametrize(("history", "expected"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_next_attempt(history: list[Attempt], expected: NextAttempt) -> None:
    assert next_attempt(history, RULES) == expected


NO_NODE: list[tuple[str, list[Attempt], GiveUp | None]] = [
    ("nothing tried: unmet demand", [], None),
    ("only refusals: still unmet demand", [no_slot(A)], None),
    (
        "after a failure: an interruption",
        [failed(A, reason="node left")],
        GiveUp("generation interrupted (node left) and no other node could take over: busy"),
    ),
    (
        "after a context refusal: an interruption of no reason",
        [too_small(A, 2048, 8192)],
        GiveUp(
            f"generation interrupted ({NO_NODE_REASON}) and no other node could take over: busy"
        ),
    ),
]


@pytest.mark.parametrize(("history", "expected"), [row[1:] for row in NO_NODE],
                         ids=[row[0] for row in NO_NODE])
def test_when_no_node(history: list[Attempt], expected: GiveUp | None) -> None:
    assert when_no_node(history, RULES, "busy") == expected


attempts = st.builds(
    Attempt,
    node_id=st.sampled_from([A, B, C, D]),
    end=st.sampled_from([AttemptEnd.FAILED, AttemptEnd.NO_FREE_SLOT]),
    ended_at=st.floats(0, 30),
    reason=st.sampled_from(["x", None]),
    tokens=st.integers(0, 10),
).map(lambda a: Attempt(a.node_id, a.end, a.ended_at, a.reason, int(a.tokens > 0), a.tokens))


@given(st.lists(attempts, max_size=12))
def test_failures_are_bounded(history: list[Attempt]) -> None:
    """Whatever the history, the completion gives up after a bounded number of failures."""
    for seen in range(len(history) + 1):
        step = next_attempt(history[:seen], RULES)
        if not isinstance(step, TryNode):
            return
        failures = [a for a in history[:seen] if a.end is AttemptEnd.FAILED]
        assert len(failures) <= MAX_RETRIES_BEFORE_FIRST_TOKEN + MAX_RESUMES
