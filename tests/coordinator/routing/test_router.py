"""The router: least-loaded choice under floor, breaker, drain and ramp-up."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

import pytest
from support.router_nodes import CONSTANTS, DAY, MODEL, OTHER, WALL0, F, N, S, node

from coordinator.routing import (
    BreakerState,
    HealthBucket,
    NodeInfo,
    Outcome,
    Router,
    laplace_score,
)
from protocol.ids import NodeId

# Upper 0.1% points of the chi-square distribution.
CHI2_CRITICAL_999 = {6: 22.458, 9: 27.877}


def router_with(*infos: NodeInfo, now: float = 0.0) -> Router:
    router = Router()
    for info in infos:
        router.upsert_node(info, now=now, wall_now=WALL0)
    return router


def start(router: Router, name: str, jobs: int = 1, now: float = 0.0) -> None:
    for _ in range(jobs):
        router.job_started(NodeId(name), now=now)


def finish(router: Router, name: str, outcome: Outcome, now: float = 0.0) -> None:
    router.job_finished(NodeId(name), outcome, now=now, wall_now=WALL0 + now)


def picks(router: Router, count: int, now: float = 0.0, seed: int = 7) -> Counter[NodeId | None]:
    rng = random.Random(seed)
    return Counter(router.choose(MODEL, now=now, rng=rng) for _ in range(count))


def chi_square(counts: Iterable[int], expected: float) -> float:
    return sum((observed - expected) ** 2 / expected for observed in counts)


def park(router: Router, name: str, now: float) -> None:
    for _ in range(CONSTANTS.breaker_failures):
        start(router, name, now=now)
        finish(router, name, F, now=now)


# --- least-loaded ---------------------------------------------------------------------------------


def test_empty_router_and_unknown_model_choose_nothing() -> None:
    rng = random.Random(1)
    assert Router().choose(MODEL, now=0.0, rng=rng) is None
    assert router_with(node("a")).choose(OTHER, now=0.0, rng=rng) is None


def test_most_spare_capacity_wins() -> None:
    router = router_with(node("a", slots=4), node("b", slots=2), node("c", slots=8))
    start(router, "a", 2)  # 0.5 spare
    start(router, "b", 1)  # 0.5 spare
    start(router, "c", 2)  # 0.75 spare
    assert picks(router, 50) == {NodeId("c"): 50}


def test_full_nodes_are_never_chosen() -> None:
    router = router_with(node("a", slots=1), node("b", slots=2))
    start(router, "a")
    start(router, "b", 2)
    assert picks(router, 10) == {None: 10}
    finish(router, "b", S)
    assert picks(router, 10) == {NodeId("b"): 10}


def test_equal_spare_is_broken_by_health() -> None:
    router = router_with(node("a"), node("b"), node("c"))
    finish_with(router, "a", F)
    finish_with(router, "b", S)
    assert picks(router, 100) == {NodeId("b"): 100}


def test_spare_capacity_outranks_health() -> None:
    router = router_with(node("a"), node("b"))
    finish_with(router, "a", S)
    start(router, "a")
    assert picks(router, 20) == {NodeId("b"): 20}


def finish_with(router: Router, name: str, outcome: Outcome) -> None:
    start(router, name)
    finish(router, name, outcome)


def test_ties_spread_uniformly() -> None:
    names = [f"n{i}" for i in range(10)]
    router = router_with(*(node(name, slots=2) for name in names))
    counts = picks(router, 20_000)
    assert set(counts) == {NodeId(name) for name in names}
    assert chi_square(counts.values(), 2_000) < CHI2_CRITICAL_999[9]


def test_ties_spread_uniformly_around_exclusions() -> None:
    names = [f"n{i}" for i in range(10)]
    router = router_with(*(node(name, slots=2) for name in names))
    excluded = frozenset(NodeId(name) for name in names[:3])
    rng = random.Random(11)
    counts = Counter(
        router.choose(MODEL, now=0.0, rng=rng, exclude=excluded) for _ in range(14_000)
    )
    assert set(counts) == {NodeId(name) for name in names[3:]}
    assert chi_square(counts.values(), 2_000) < CHI2_CRITICAL_999[6]


def test_no_ranking_by_speed_above_the_floor() -> None:
    router = router_with(node("slow"), node("fast"))
    router.record_measurement(NodeId("slow"), 5.0, now=0.0)
    router.record_measurement(NodeId("fast"), 500.0, now=0.0)
    counts = picks(router, 2_000)
    assert chi_square(counts.values(), 1_000) < 10.83  # one degree of freedom


def test_exclude_never_gives_the_same_node_twice() -> None:
    router = router_with(*(node(f"n{i}") for i in range(6)))
    start(router, "n0", 2)
    rng = random.Random(3)
    tried: set[NodeId] = set()
    while (chosen := router.choose(MODEL, now=0.0, rng=rng, exclude=frozenset(tried))) is not None:
        assert chosen not in tried
        tried.add(chosen)
    assert tried == {NodeId(f"n{i}") for i in range(6)}


def test_exclusion_of_the_whole_best_run_falls_to_the_next() -> None:
    router = router_with(node("a"), node("b"), node("c"))
    start(router, "c")
    rng = random.Random(5)
    assert router.choose(MODEL, now=0.0, rng=rng, exclude={NodeId("a"), NodeId("b")}) == "c"


def test_models_are_routed_separately() -> None:
    router = router_with(node("a", models=[MODEL]), node("b", models=[MODEL, OTHER]))
    rng = random.Random(2)
    assert {router.choose(OTHER, now=0.0, rng=rng) for _ in range(20)} == {"b"}
    router.upsert_node(node("a", models=[OTHER]), now=0.0, wall_now=WALL0)
    router.job_started(NodeId("b"), now=0.0)
    assert router.choose(MODEL, now=0.0, rng=rng) == "b"
    assert router.choose(OTHER, now=0.0, rng=rng) == "a"


# --- floor, drain, membership ---------------------------------------------------------------------


def test_floor_admits_unmeasured_nodes_on_their_declaration() -> None:
    router = router_with(node("none"), node("quick", declared=30.0), node("slow", declared=4.0))
    assert set(picks(router, 200)) == {NodeId("none"), NodeId("quick")}


def test_measurement_moves_nodes_across_the_floor() -> None:
    router = router_with(node("a", declared=100.0))
    router.record_measurement(NodeId("a"), 4.9, now=0.0)
    assert picks(router, 5) == {None: 5}
    router.record_measurement(NodeId("a"), 5.0, now=0.0)
    assert picks(router, 5) == {NodeId("a"): 5}


def test_draining_and_removed_nodes_are_not_chosen() -> None:
    router = router_with(node("a"), node("b"), node("c"))
    router.set_draining(NodeId("a"), now=0.0)
    router.remove_node(NodeId("b"))
    assert picks(router, 30) == {NodeId("c"): 30}
    router.upsert_node(node("a"), now=0.0, wall_now=WALL0)
    assert set(picks(router, 100)) == {NodeId("a"), NodeId("c")}


def test_jobs_can_finish_after_the_node_is_removed() -> None:
    router = router_with(node("a"))
    start(router, "a")
    router.remove_node(NodeId("a"))
    finish(router, "a", F)
    assert router.snapshot(NodeId("a"), now=0.0).in_flight == 0
    router.forget_node(NodeId("a"))
    assert NodeId("a") not in router
    with pytest.raises(KeyError):
        router.job_started(NodeId("a"), now=0.0)


def test_finishing_a_job_that_never_started_is_an_error() -> None:
    router = router_with(node("a"))
    with pytest.raises(ValueError):
        finish(router, "a", S)


# --- breaker in the router -----------------------------------------------------------------------


def test_parked_node_returns_half_open_for_exactly_one_trial() -> None:
    router = router_with(node("a", slots=4))
    park(router, "a", now=10.0)
    snap = router.snapshot(NodeId("a"), now=10.0)
    assert snap.breaker_state is BreakerState.PARKED
    assert snap.park_until == 25.0
    assert picks(router, 5, now=24.9) == {None: 5}
    assert picks(router, 5, now=25.0) == {NodeId("a"): 5}
    start(router, "a", now=25.0)
    assert picks(router, 5, now=26.0) == {None: 5}
    finish(router, "a", S, now=27.0)
    assert router.snapshot(NodeId("a"), now=27.0).breaker_state is BreakerState.CLOSED
    start(router, "a", 3, now=27.0)
    assert picks(router, 5, now=27.0) == {NodeId("a"): 5}


def test_failed_trial_parks_again() -> None:
    router = router_with(node("a"))
    park(router, "a", now=0.0)
    start(router, "a", now=15.0)
    finish(router, "a", F, now=16.0)
    assert router.snapshot(NodeId("a"), now=16.0).park_until == 31.0
    assert picks(router, 3, now=30.9) == {None: 3}
    assert picks(router, 3, now=31.0) == {NodeId("a"): 3}


def test_neutral_trial_leaves_the_node_half_open_and_free() -> None:
    router = router_with(node("a"))
    park(router, "a", now=0.0)
    start(router, "a", now=15.0)
    finish(router, "a", N, now=16.0)
    assert router.snapshot(NodeId("a"), now=16.0).breaker_state is BreakerState.HALF_OPEN
    assert picks(router, 3, now=16.0) == {NodeId("a"): 3}
    start(router, "a", now=16.0)
    assert picks(router, 3, now=16.0) == {None: 3}


def test_reconnecting_does_not_clear_a_park() -> None:
    router = router_with(node("a"))
    park(router, "a", now=0.0)
    router.remove_node(NodeId("a"))
    router.upsert_node(node("a"), now=1.0, wall_now=WALL0)
    assert picks(router, 3, now=1.0) == {None: 3}
    assert picks(router, 3, now=15.0) == {NodeId("a"): 3}


# --- ramp-up and health ---------------------------------------------------------------------------


def test_new_node_ramps_from_a_quarter_to_all_slots() -> None:
    router = Router()
    router.upsert_node(node("a", slots=8, first_seen=WALL0), now=0.0, wall_now=WALL0)
    assert router.snapshot(NodeId("a"), now=0.0).admitted_capacity == 2
    start(router, "a", 2)
    assert picks(router, 3) == {None: 3}
    router.refresh(now=0.0, wall_now=WALL0 + 3.5 * DAY)
    assert router.snapshot(NodeId("a"), now=0.0).admitted_capacity == 5
    router.refresh(now=0.0, wall_now=WALL0 + 7 * DAY)
    snap = router.snapshot(NodeId("a"), now=0.0)
    assert snap.admitted_capacity == 8
    assert snap.spare_capacity == 0.75


def test_refresh_ages_health_out_of_the_window() -> None:
    router = router_with(node("a"))
    finish_with(router, "a", F)
    assert router.snapshot(NodeId("a"), now=0.0).health_score == laplace_score(0, 1)
    router.refresh(now=0.0, wall_now=WALL0 + 15 * DAY)
    assert router.snapshot(NodeId("a"), now=0.0).health_score == 0.5


def test_health_is_restored_from_saved_buckets_and_probes_count() -> None:
    saved = (HealthBucket(start=int(WALL0 // 3600) * 3600, successes=6, failures=2),)
    router = Router()
    router.upsert_node(node("a"), now=0.0, wall_now=WALL0, health=saved)
    assert router.snapshot(NodeId("a"), now=0.0).health_score == laplace_score(6, 2)
    router.record_probe(NodeId("a"), F, now=0.0, wall_now=WALL0)
    router.add_online(NodeId("a"), 60.0, wall_now=WALL0)
    (bucket,) = router.health_buckets(NodeId("a"), wall_now=WALL0)
    assert (bucket.successes, bucket.failures, bucket.probe_failures) == (6, 2, 1)
    assert bucket.online_s == 60.0
    assert router.snapshot(NodeId("a"), now=0.0).health_score == laplace_score(6, 3)


def test_a_local_node_goes_before_an_equally_loaded_remote_one_but_never_a_less_loaded() -> None:
    router = router_with(node("local", slots=2), replace(node("far"), owner="replica-2"))
    same_health = router.snapshot(NodeId("local"), now=0.0).health_score
    router.observe_remote(NodeId("far"), in_flight=0, capacity=2, health_score=same_health,
                          measured_tok_s=None, draining=False, now=0.0)
    assert picks(router, 50) == Counter({NodeId("local"): 50})
    start(router, "local")  # half full: the idle remote node is less loaded
    assert picks(router, 50) == Counter({NodeId("far"): 50})
