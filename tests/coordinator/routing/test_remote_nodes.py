"""Nodes connected to other replicas, in the pure router: the owner's report rules their load
and capacity, this router's own count is a stop-gap between reports, and nothing drifts."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from coordinator.routing import NodeInfo, Outcome, Router
from protocol.ids import ModelId, NodeId

MODEL = ModelId("gemma-3-270m")
WALL0 = 1_700_000_000.0
HERE, THERE = NodeId("here"), NodeId("there")


def info(name: NodeId, owner: str | None = None, slots: int = 2) -> NodeInfo:
    return NodeInfo(node_id=name, models=frozenset({MODEL}), slots=slots, declared_tok_s=None,
                    first_seen=WALL0 - 90 * 86_400, owner=owner)


def report(router: Router, in_flight: int, capacity: int = 2, draining: bool = False) -> None:
    router.observe_remote(THERE, in_flight=in_flight, capacity=capacity, health_score=0.5,
                          measured_tok_s=None, draining=draining, now=0.0)


def choose(router: Router) -> NodeId | None:
    return router.choose(MODEL, now=0.0, rng=random.Random(1))


def test_remote_node_is_chosen_only_after_its_owner_reports() -> None:
    router = Router()
    router.upsert_node(info(THERE, owner="b"), now=0.0, wall_now=WALL0)
    assert router.owner(THERE) == "b" and choose(router) is None
    report(router, in_flight=0)
    assert choose(router) == THERE
    assert router.live_nodes_serving(MODEL) == [THERE]


def test_least_loaded_across_replicas() -> None:
    router = Router()
    router.upsert_node(info(HERE), now=0.0, wall_now=WALL0)
    router.upsert_node(info(THERE, owner="b"), now=0.0, wall_now=WALL0)
    report(router, in_flight=1)  # another replica's job runs there
    assert choose(router) == HERE
    router.job_started(HERE, now=0.0)
    router.job_started(HERE, now=0.0)
    assert choose(router) == THERE
    router.job_started(THERE, now=0.0)
    assert choose(router) is None  # both full, counting this router's own dispatch


def test_owner_report_overwrites_local_count_so_it_cannot_drift() -> None:
    router = Router()
    router.upsert_node(info(THERE, owner="b"), now=0.0, wall_now=WALL0)
    report(router, in_flight=0)
    router.job_started(THERE, now=0.0)
    router.job_started(THERE, now=0.0)
    assert choose(router) is None
    report(router, in_flight=0)  # those jobs ended (or their dispatcher died)
    assert choose(router) == THERE
    router.release_remote(THERE, now=0.0)  # late ends never go below zero
    router.release_remote(THERE, now=0.0)
    router.job_finished(THERE, Outcome.FAILURE, now=0.0, wall_now=WALL0)
    assert router.snapshot(THERE, now=0.0).in_flight == 0


def test_refused_node_counts_full_until_the_next_report() -> None:
    router = Router()
    router.upsert_node(info(THERE, owner="b"), now=0.0, wall_now=WALL0)
    report(router, in_flight=0)
    router.mark_full(THERE, now=0.0)
    assert choose(router) is None
    report(router, in_flight=1)
    assert choose(router) == THERE


def test_owner_capacity_and_drain_rule() -> None:
    router = Router()
    router.upsert_node(info(THERE, owner="b"), now=0.0, wall_now=WALL0)
    report(router, in_flight=0, capacity=0)  # parked by its owner's breaker
    assert choose(router) is None
    report(router, in_flight=0, draining=True)
    assert choose(router) is None and router.live_nodes_serving(MODEL) == []


def test_moving_between_replicas_resets_the_count() -> None:
    router = Router()
    router.upsert_node(info(THERE, owner="b"), now=0.0, wall_now=WALL0)
    report(router, in_flight=2)
    router.upsert_node(info(THERE), now=0.0, wall_now=WALL0)  # it reconnected here
    assert router.owner(THERE) is None
    assert router.snapshot(THERE, now=0.0).in_flight == 0
    router.job_started(THERE, now=0.0)
    router.release_remote(THERE, now=0.0)  # a stale remote end changes nothing here
    assert router.snapshot(THERE, now=0.0).in_flight == 1
    router.job_finished(THERE, Outcome.SUCCESS, now=0.0, wall_now=WALL0)
    with pytest.raises(ValueError):
        router.job_finished(THERE, Outcome.SUCCESS, now=0.0, wall_now=WALL0)
    router.upsert_node(replace(info(THERE), owner="c"), now=0.0, wall_now=WALL0)
    assert router.owner(THERE) == "c" and choose(router) is None


def test_local_version_moves_only_for_local_nodes() -> None:
    router = Router()
    router.upsert_node(info(THERE, owner="b"), now=0.0, wall_now=WALL0)
    before = router.local_version
    report(router, in_flight=1)
    assert router.local_version == before
    router.upsert_node(info(HERE), now=0.0, wall_now=WALL0)
    assert router.local_version > before
    with pytest.raises(ValueError):
        router.observe_remote(HERE, in_flight=0, capacity=1, health_score=0.5,
                              measured_tok_s=None, draining=False, now=0.0)


def test_a_park_carried_over_from_another_replica() -> None:
    router = Router()
    router.upsert_node(info(HERE), now=0.0, wall_now=WALL0)
    router.park(HERE, until=100.0, now=0.0)
    assert choose(router) is None
    snap = router.snapshot(HERE, now=50.0)
    assert snap.breaker_state.value == "parked" and snap.park_until == 100.0
    router.park(HERE, until=20.0, now=50.0)  # a shorter park never shortens the one in force
    assert router.snapshot(HERE, now=60.0).breaker_state.value == "parked"
    assert router.choose(MODEL, now=100.0, rng=random.Random(1)) == HERE  # half-open trial
