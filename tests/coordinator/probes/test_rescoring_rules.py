"""Who may re-score whom, and what a re-scoring's comparison does: the pure rules, by table."""

from __future__ import annotations

import pytest

from coordinator.probes.rescoring_rules import (
    AnswerCounts,
    Candidate,
    Disputes,
    Ruling,
    eligible_verifiers,
    may_verify,
    ruling,
)
from protocol.ids import NodeId

CHECKED = NodeId("checked")
CHECKED_OPERATOR = 1


def peer(**changes: object) -> Candidate:
    """A node that may verify ``CHECKED``, with ``changes`` applied."""
    fields: dict[str, object] = {
        "node_id": NodeId("peer"), "operator": 2, "admitted": True, "trust": 1.0, "scores": True,
    }
    fields.update(changes)
    return Candidate(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("candidate", "checked_payee", "allowed"), [
    (peer(), CHECKED_OPERATOR, True),
    (peer(), None, True),  # the checked node's payee unknown (gone): any other operator
    (peer(node_id=CHECKED), CHECKED_OPERATOR, False),  # never the node itself
    (peer(operator=CHECKED_OPERATOR), CHECKED_OPERATOR, False),  # never the same operator
    (peer(operator=None), CHECKED_OPERATOR, False),  # enrolled by nobody: an identity is free
    (peer(admitted=False), CHECKED_OPERATOR, False),  # not (or no longer) through its exam
    (peer(trust=0.99), CHECKED_OPERATOR, False),  # still ramping up
    (peer(trust=0.25), CHECKED_OPERATOR, False),
    (peer(scores=False), CHECKED_OPERATOR, False),  # too old a protocol to score
    (peer(platform=True, operator=None), CHECKED_OPERATOR, False),  # peers' rules all the same
])
def test_who_may_verify_as_a_peer(
    candidate: Candidate, checked_payee: int | None, allowed: bool
) -> None:
    assert may_verify(candidate, CHECKED, checked_payee) is allowed


def test_configured_platform_verifiers_replace_peers() -> None:
    platform = peer(node_id=NodeId("platform"), platform=True, operator=None, trust=0.25)
    own_platform = peer(node_id=CHECKED, platform=True)
    old_platform = peer(node_id=NodeId("old"), platform=True, scores=False)
    a_peer = peer()
    everyone = [platform, own_platform, old_platform, a_peer]
    for probe in (False, True):
        assert eligible_verifiers(
            everyone, CHECKED, CHECKED_OPERATOR, platform_configured=True, probe=probe
        ) == [platform]
    assert eligible_verifiers(
        everyone, CHECKED, CHECKED_OPERATOR, platform_configured=False, probe=False
    ) == [a_peer]
    assert eligible_verifiers(
        [peer(operator=CHECKED_OPERATOR)], CHECKED, CHECKED_OPERATOR, platform_configured=False,
        probe=False,
    ) == []


def test_peers_re_score_paid_answers_only() -> None:
    """A node sitting its exam takes probes only: were they re-scored by a peer, its every
    failed exam answer would send the peer back to the exam too."""
    assert eligible_verifiers(
        [peer()], CHECKED, CHECKED_OPERATOR, platform_configured=False, probe=True
    ) == []


VERIFIER = NodeId("verifier")


@pytest.mark.parametrize(("genuine", "platform", "expected"), [
    (True, True, Ruling(True, ())),
    (False, True, Ruling(False, (CHECKED,))),  # the platform is believed: verdict, re-exam
    (None, True, Ruling(None, ())),
    (True, False, Ruling(None, ())),  # a peer's agreement proves nothing either way
    (False, False, Ruling(None, (CHECKED, VERIFIER))),  # a peer's disagreement: both re-sit
    (None, False, Ruling(None, ())),
])
def test_what_a_comparison_does(genuine: bool | None, platform: bool, expected: Ruling) -> None:
    assert ruling(genuine, CHECKED, VERIFIER, platform=platform) == expected


def test_answer_counts_keep_the_nodes_seen_most_recently() -> None:
    counts = AnswerCounts(limit=2)
    a, b, c = NodeId("a"), NodeId("b"), NodeId("c")
    assert [counts.seen(a), counts.seen(a), counts.seen(b), counts.seen(a)] == [0, 1, 0, 2]
    assert counts.seen(c) == 0  # b, seen least recently, is forgotten
    assert (counts.seen(a), counts.seen(b)) == (3, 0)


def test_disputes_from_two_operators_make_a_verdict_and_one_operator_never_does() -> None:
    disputes = Disputes(corroboration=2, window_s=100.0)
    honest, cheat = NodeId("honest"), NodeId("cheat")
    assert not any(disputes.dispute(honest, 7, float(t)) for t in range(10))  # one operator
    assert not disputes.dispute(cheat, 1, 0.0)
    assert not disputes.dispute(cheat, 2, 150.0)  # the first dispute is past the window
    assert disputes.dispute(cheat, 3, 160.0)
    assert not disputes.dispute(cheat, 4, 170.0)  # a verdict starts the count afresh
