"""Holds on paid jobs: a node held for a model takes no paid job for it, through the router and
on the holds alone."""

from __future__ import annotations

import random

from support.router_nodes import MODEL, OTHER, WALL0, node

from coordinator.routing import NodeInfo, Router
from coordinator.routing.paid import PaidHolds
from protocol.ids import NodeId

A, B = NodeId("a"), NodeId("b")


def router_with(*infos: NodeInfo) -> Router:
    router = Router()
    for info in infos:
        router.upsert_node(info, now=0.0, wall_now=WALL0)
    return router


def test_a_node_held_from_paid_jobs_is_passed_over_for_that_model_only() -> None:
    router = router_with(node("a", models=(MODEL, OTHER)), node("b"))
    rng = random.Random(0)
    router.hold_paid(NodeId("b"), MODEL)
    router.hold_paid(NodeId("a"), MODEL)
    assert router.choose(MODEL, now=0.0, rng=rng) is None
    assert router.choose(OTHER, now=0.0, rng=rng) == NodeId("a")
    router.admit_paid(NodeId("a"), MODEL)
    assert router.paid_eligible(NodeId("a"), MODEL)
    assert not router.paid_eligible(NodeId("b"), MODEL)
    assert {router.choose(MODEL, now=0.0, rng=rng) for _ in range(20)} == {NodeId("a")}
    assert router.choose(MODEL, now=0.0, rng=rng, exclude={NodeId("a")}) is None


def test_holding_and_admitting_say_whether_anything_changed() -> None:
    holds = PaidHolds()
    assert holds.hold(A, MODEL)
    assert not holds.hold(A, MODEL)
    assert holds.hold(A, OTHER)
    assert holds.models_held(A) == tuple(sorted((MODEL, OTHER)))
    assert holds.admit(A, MODEL)
    assert not holds.admit(A, MODEL)
    assert not holds.admit(B, OTHER)
    assert holds.eligible(A, MODEL)
    assert not holds.eligible(A, OTHER)
    assert holds.held_for(OTHER) == {A}
    assert holds.held_for(MODEL) == set()


def test_a_forgotten_node_is_held_for_nothing() -> None:
    holds = PaidHolds()
    holds.hold(A, MODEL)
    holds.hold(A, OTHER)
    holds.hold(B, MODEL)
    holds.forget(A)
    assert holds.models_held(A) == ()
    assert holds.held_for(MODEL) == {B}


def test_a_hold_from_the_exam_moves_the_local_version_only_for_a_local_node() -> None:
    router = router_with(node("a"))
    before = router.local_version
    router.hold_paid(A, MODEL)
    router.hold_paid(A, MODEL)  # already held: nothing to announce
    assert router.local_version == before + 1
    assert router.paid_held(A) == (MODEL,)
    router.admit_paid(A, MODEL)
    assert router.local_version == before + 2
