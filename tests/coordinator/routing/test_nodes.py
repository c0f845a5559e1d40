"""One node's record: the capacity in force, its key among the candidates, and its snapshot,
decided from the record and the time passed in."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.router_nodes import CONSTANTS, MODEL, F, node

from coordinator.routing import BreakerState, HealthWindow, route_key
from coordinator.routing.breaker import Breaker
from coordinator.routing.nodes import (
    NodeInfo,
    RoutedNode,
    candidate_key,
    capacity_now,
    snapshot_of,
)
from protocol.ids import NodeId

FLOOR = CONSTANTS.floor_tok_s


def record(info: NodeInfo, *, admitted: int = 4, in_flight: int = 0) -> RoutedNode:
    routed = RoutedNode(info, Breaker(CONSTANTS), HealthWindow(CONSTANTS.health_window_days))
    routed.admitted = admitted
    routed.in_flight = in_flight
    return routed


def parked(routed: RoutedNode, now: float) -> RoutedNode:
    for _ in range(CONSTANTS.breaker_failures):
        routed.breaker.record(F, now)
    return routed


def test_capacity_is_the_ramp_capped_by_the_breaker() -> None:
    routed = record(node("a"), admitted=3)
    assert capacity_now(routed, 0.0) == 3
    parked(routed, 0.0)
    assert capacity_now(routed, 0.0) == 0
    park_until = routed.breaker.park_until
    assert park_until is not None
    assert capacity_now(routed, park_until) == 1  # half-open: one trial


def test_a_remote_node_has_the_capacity_its_owner_reported() -> None:
    routed = parked(record(replace(node("far"), owner="replica-2"), admitted=1), 0.0)
    routed.remote_capacity = 3
    assert capacity_now(routed, 0.0) == 3
    assert candidate_key(routed, 0.0, FLOOR) == route_key(1.0, 0.5, NodeId("far"), remote=True)


@pytest.mark.parametrize(
    ("change", "expected_candidate"),
    [
        ({}, True),
        ({"live": False}, False),
        ({"draining": True}, False),
        ({"in_flight": 4}, False),
        ({"measured_tok_s": FLOOR / 2}, False),
        ({"measured_tok_s": FLOOR * 2}, True),
    ],
)
def test_a_node_is_a_candidate_only_live_undrained_above_the_floor_and_not_full(
    change: dict[str, object], expected_candidate: bool
) -> None:
    routed = record(node("a"))
    for name, value in change.items():
        setattr(routed, name, value)
    key = candidate_key(routed, 0.0, FLOOR)
    assert (key is not None) == expected_candidate
    assert snapshot_of(routed, 0.0, FLOOR).candidate == expected_candidate


@given(admitted=st.integers(1, 16), in_flight=st.integers(0, 16))
def test_the_key_ranks_by_spare_capacity(admitted: int, in_flight: int) -> None:
    routed = record(node("a", slots=16), admitted=admitted, in_flight=in_flight)
    key = candidate_key(routed, 0.0, FLOOR)
    if in_flight >= admitted:
        assert key is None
    else:
        assert key == route_key((admitted - in_flight) / admitted, routed.health_score, NodeId("a"))


def test_a_parked_node_snapshot_shows_no_spare_capacity() -> None:
    routed = parked(record(node("a", declared=50.0), in_flight=1), 10.0)
    snapshot = snapshot_of(routed, 10.0, FLOOR)
    assert snapshot.breaker_state is BreakerState.PARKED
    assert snapshot.spare_capacity == 0.0
    assert snapshot.park_until == routed.breaker.park_until
    assert not snapshot.candidate
    assert (snapshot.node_id, snapshot.models, snapshot.in_flight) == (NodeId("a"), {MODEL}, 1)
    assert snapshot.declared_tok_s == 50.0


def test_a_redeclaration_replaces_the_offers_it_will_make() -> None:
    routed = record(node("a", context=512))
    assert routed.declared == ((MODEL, 512),)
    routed.declare(node("a", context=2048))
    assert routed.declared == ((MODEL, 2048),)
    assert routed.offers == ()  # the router places offers, not the record
