"""The router checked against a brute-force chooser written here from the rules, over random
histories and over many nodes."""

from __future__ import annotations

import math
import random
from collections.abc import Set
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from support.router_nodes import CONSTANTS, DAY, MODEL, OTHER, WALL0, F, N, S, node

from coordinator.routing import (
    BreakerState,
    NodeInfo,
    Outcome,
    Router,
    admitted_capacity,
    ramp_fraction,
)
from protocol.ids import ModelId, NodeId


@dataclass
class Shadow:
    """What the test itself knows about a node, kept without looking at the router."""

    info: NodeInfo
    admitted: int
    live: bool = True
    draining: bool = False
    measured: float | None = None
    in_flight: int = 0


def naive_best(
    router: Router, shadows: dict[NodeId, Shadow], model: ModelId, now: float, exclude: Set[NodeId]
) -> set[NodeId]:
    """Every node the rules allow to be chosen: an O(n) scan from first principles."""
    scored: list[tuple[float, float, NodeId]] = []
    for node_id, shadow in shadows.items():
        snap = router.snapshot(node_id, now=now)
        assert snap.in_flight == shadow.in_flight
        assert snap.admitted_capacity == shadow.admitted
        speed = shadow.measured if shadow.measured is not None else shadow.info.declared_tok_s
        if (
            node_id in exclude
            or not shadow.live
            or shadow.draining
            or model not in shadow.info.models
            or (speed is not None and speed < CONSTANTS.floor_tok_s)
            or snap.breaker_state is BreakerState.PARKED
        ):
            continue
        capacity = shadow.admitted if snap.breaker_state is BreakerState.CLOSED else 1
        if shadow.in_flight >= capacity:
            continue
        scored.append(((capacity - shadow.in_flight) / capacity, snap.health_score, node_id))
    if not scored:
        return set()
    top = max((spare, health) for spare, health, _ in scored)
    return {node_id for spare, health, node_id in scored if (spare, health) == top}


outcomes = st.sampled_from([S, F, F, N])
node_index = st.integers(0, 999)


@dataclass(frozen=True)
class Choose:
    exclude_mask: int
    other_model: bool


@dataclass(frozen=True)
class Finish:
    index: int
    outcome: Outcome


@dataclass(frozen=True)
class Burst:
    """Jobs started and finished back to back, as a burst of errors on one node would be."""

    index: int
    outcomes: tuple[Outcome, ...]


@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class Measure:
    index: int
    tok_s: float


@dataclass(frozen=True)
class Drain:
    index: int


@dataclass(frozen=True)
class Remove:
    index: int


@dataclass(frozen=True)
class Rejoin:
    index: int


@dataclass(frozen=True)
class Probe:
    index: int
    outcome: Outcome


@dataclass(frozen=True)
class Days:
    days: float


Operation = Choose | Finish | Burst | Advance | Measure | Drain | Remove | Rejoin | Probe | Days

choose_any = st.builds(Choose, st.just(0), st.just(False))
finish_any = st.builds(Finish, node_index, outcomes)
operations: st.SearchStrategy[Operation] = st.one_of(
    st.builds(Choose, st.integers(0, 2**20), st.booleans()),
    choose_any,
    choose_any,
    finish_any,
    finish_any,
    st.builds(Burst, node_index, st.lists(outcomes, min_size=1, max_size=4).map(tuple)),
    st.builds(Advance, st.floats(0.0, 20.0)),
    st.builds(Advance, st.floats(0.0, 5.0)),
    st.builds(Measure, node_index, st.sampled_from([0.0, 4.9, 5.0, 40.0])),
    st.builds(Drain, node_index),
    st.builds(Remove, node_index),
    st.builds(Rejoin, node_index),
    st.builds(Probe, node_index, outcomes),
    st.builds(Days, st.floats(0.0, 4.0)),
)
node_specs = st.tuples(
    st.integers(1, 6),
    st.sampled_from([None, 3.0, 5.0, 50.0]),
    st.sampled_from([(MODEL,), (OTHER,), (MODEL, OTHER)]),
    st.floats(0.0, 10.0),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(node_specs, min_size=1, max_size=12),
    st.lists(operations, min_size=40, max_size=120),
    st.integers(0, 2**32 - 1),
)
def test_router_agrees_with_the_naive_chooser_over_random_histories(
    specs: list[tuple[int, float | None, tuple[ModelId, ...], float]],
    ops: list[Operation],
    seed: int,
) -> None:
    rng = random.Random(seed)
    router = Router()
    now, wall = 0.0, WALL0
    shadows: dict[NodeId, Shadow] = {}

    def admitted(info: NodeInfo) -> int:
        return admitted_capacity(info.slots, ramp_fraction(wall - info.first_seen, CONSTANTS))

    for i, (slots, declared, models, age_days) in enumerate(specs):
        info = node(
            f"n{i}", slots=slots, declared=declared, models=models, first_seen=wall - age_days * DAY
        )
        router.upsert_node(info, now=now, wall_now=wall)
        shadows[info.node_id] = Shadow(info=info, admitted=admitted(info))
    ids = list(shadows)

    def at(index: int) -> Shadow:
        return shadows[ids[index % len(ids)]]

    for op in ops:
        match op:
            case Choose(exclude_mask=mask, other_model=other_model):
                model = OTHER if other_model else MODEL
                exclude = frozenset(ids[j] for j in range(len(ids)) if mask >> j & 1)
                best = naive_best(router, shadows, model, now, exclude)
                chosen = router.choose(model, now=now, rng=rng, exclude=exclude)
                assert (chosen is None) == (not best)
                if chosen is not None:
                    assert chosen in best
                    router.job_started(chosen, now=now)
                    shadows[chosen].in_flight += 1
                everyone = naive_best(router, shadows, model, now, frozenset())
                assert router.candidate_count(model, now=now) == len(
                    [s for s in router.snapshots(now=now) if s.candidate and model in s.models]
                )
                assert (router.candidate_count(model, now=now) == 0) == (not everyone)
            case Finish(index=index, outcome=outcome):
                busy = [shadow for shadow in shadows.values() if shadow.in_flight]
                if busy:
                    shadow = busy[index % len(busy)]
                    router.job_finished(shadow.info.node_id, outcome, now=now, wall_now=wall)
                    shadow.in_flight -= 1
            case Burst(index=index, outcomes=burst):
                for outcome in burst:
                    router.job_started(at(index).info.node_id, now=now)
                    router.job_finished(at(index).info.node_id, outcome, now=now, wall_now=wall)
            case Advance(seconds=seconds):
                now += seconds
                wall += seconds
            case Measure(index=index, tok_s=tok_s):
                router.record_measurement(at(index).info.node_id, tok_s, now=now)
                at(index).measured = tok_s
            case Drain(index=index) if at(index).live:
                router.set_draining(at(index).info.node_id, now=now)
                at(index).draining = True
            case Remove(index=index):
                router.remove_node(at(index).info.node_id)
                at(index).live = False
            case Rejoin(index=index):
                shadow = at(index)
                router.upsert_node(shadow.info, now=now, wall_now=wall)
                shadow.live, shadow.draining = True, False
                shadow.admitted = admitted(shadow.info)
            case Probe(index=index, outcome=outcome):
                router.record_probe(at(index).info.node_id, outcome, now=now, wall_now=wall)
            case Days(days=days):
                wall += days * DAY
                router.refresh(now=now, wall_now=wall)
                for shadow in shadows.values():
                    shadow.admitted = admitted(shadow.info)


@settings(max_examples=25, deadline=None)
@given(st.integers(50, 400), st.integers(0, 2**32 - 1))
def test_many_nodes_choice_is_always_best_and_never_ineligible(count: int, seed: int) -> None:
    draw = random.Random(seed)
    rng = random.Random(seed + 1)
    router = Router()
    shadows: dict[NodeId, Shadow] = {}
    for i in range(count):
        info = node(
            f"n{i:04d}",
            slots=draw.choice([1, 2, 4, 8]),
            declared=draw.choice([None, 2.0, 10.0]),
            first_seen=WALL0 - draw.choice([0.0, 3.0, 30.0]) * DAY,
        )
        router.upsert_node(info, now=0.0, wall_now=WALL0)
        shadow = Shadow(
            info=info,
            admitted=admitted_capacity(
                info.slots, ramp_fraction(WALL0 - info.first_seen, CONSTANTS)
            ),
        )
        shadows[info.node_id] = shadow
        for _ in range(draw.randrange(shadow.admitted + 1)):
            router.job_started(info.node_id, now=0.0)
            shadow.in_flight += 1
        roll = draw.random()
        if roll < 0.1:
            router.set_draining(info.node_id, now=0.0)
            shadow.draining = True
        elif roll < 0.2:
            for _ in range(3):
                router.job_started(info.node_id, now=0.0)
                router.job_finished(info.node_id, F, now=draw.uniform(0, 20), wall_now=WALL0)
        elif roll < 0.3:
            shadow.measured = draw.choice([1.0, 6.0])
            router.record_measurement(info.node_id, shadow.measured, now=0.0)
        for _ in range(draw.randrange(3)):
            router.record_probe(info.node_id, draw.choice([S, F]), now=0.0, wall_now=WALL0)

    for step in range(40):
        now = step * 0.5
        exclude = frozenset(draw.sample(list(shadows), 3))
        best = naive_best(router, shadows, MODEL, now, exclude)
        chosen = router.choose(MODEL, now=now, rng=rng, exclude=exclude)
        assert (chosen is None) == (not best)
        if chosen is None:
            continue
        assert chosen in best
        snap = router.snapshot(chosen, now=now)
        assert snap.live and not snap.draining and snap.candidate
        assert snap.breaker_state is not BreakerState.PARKED
        assert snap.in_flight < snap.admitted_capacity
        speed = snap.measured_tok_s if snap.measured_tok_s is not None else snap.declared_tok_s
        assert speed is None or speed >= CONSTANTS.floor_tok_s
        router.job_started(chosen, now=now)
        shadows[chosen].in_flight += 1
        assert math.isfinite(snap.health_score)
