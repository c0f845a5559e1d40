"""How long choosing a node takes as the network grows.

Run from the repository root: ``python bench/routing.py`` (``--quick``: 1,000 nodes at most, fewer
picks, a few seconds).
Target: under 50 µs per pick at 10,000 nodes serving one model, growing no worse than
logarithmically with the number of nodes.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import harness  # the repository on the path

from coordinator.routing import NodeInfo, Outcome, Router
from protocol.ids import ModelId, NodeId

MODEL = ModelId("gemma-3-270m")
DAY = 86_400.0
WALL0 = 1_700_000_000.0
SIZES = (10, 1_000, 10_000)
TARGET_US = 50.0
PICKS = 20_000
REPEATS = 5


@dataclass(frozen=True)
class Result:
    nodes: int
    choose_us: float
    choose_excluding_us: float
    started_us: float
    finished_us: float


def build(count: int, seed: int) -> tuple[Router, deque[NodeId]]:
    """A router with ``count`` nodes under varied load: mixed slots, ages, health, a few parked
    or draining; returns it with the jobs in flight, oldest first."""
    draw = random.Random(seed)
    router = Router()
    in_flight: deque[NodeId] = deque()
    for i in range(count):
        node_id = NodeId(f"node-{i:06d}")
        info = NodeInfo(
            node_id=node_id,
            models=frozenset({MODEL}),
            slots=draw.choice([1, 2, 4, 4, 8, 16]),
            declared_tok_s=draw.choice([None, 12.0, 40.0, 120.0]),
            first_seen=WALL0 - draw.uniform(0.0, 30.0) * DAY,
        )
        router.upsert_node(info, now=0.0, wall_now=WALL0)
        for _ in range(draw.randrange(6)):
            outcome = Outcome.SUCCESS if draw.random() < 0.9 else Outcome.FAILURE
            router.record_probe(node_id, outcome, now=0.0, wall_now=WALL0)
        roll = draw.random()
        if roll < 0.02:
            router.set_draining(node_id, now=0.0)
        elif roll < 0.04:
            for _ in range(3):
                router.job_started(node_id, now=0.0)
                router.job_finished(node_id, Outcome.FAILURE, now=0.0, wall_now=WALL0)
        capacity = router.snapshot(node_id, now=0.0).admitted_capacity
        for _ in range(draw.randrange(capacity)):
            router.job_started(node_id, now=0.0)
            in_flight.append(node_id)
    draw.shuffle(in_flight)
    return router, in_flight


def batch_us(run: Callable[[], object]) -> float:
    """One batch of PICKS calls, in µs per call."""
    begin = time.perf_counter_ns()
    for _ in range(PICKS):
        run()
    return (time.perf_counter_ns() - begin) / PICKS / 1_000


def bookkeeping_us(
    router: Router, in_flight: deque[NodeId], rng: random.Random
) -> tuple[float, float]:
    """Median µs of job_started and of job_finished, in a steady state where each pick starts
    a job and the oldest job in flight finishes."""
    started_ns: list[int] = []
    finished_ns: list[int] = []
    clock = time.perf_counter_ns
    now = 1.0
    for _ in range(PICKS * 2):
        now += 0.001
        chosen = router.choose(MODEL, now=now, rng=rng)
        if chosen is not None:
            begin = clock()
            router.job_started(chosen, now=now)
            started_ns.append(clock() - begin)
            in_flight.append(chosen)
        done = in_flight.popleft()
        outcome = Outcome.SUCCESS if rng.random() < 0.97 else Outcome.NEUTRAL
        begin = clock()
        router.job_finished(done, outcome, now=now, wall_now=WALL0 + now)
        finished_ns.append(clock() - begin)
    return statistics.median(started_ns) / 1_000, statistics.median(finished_ns) / 1_000


def measure() -> list[Result]:
    """Batches for every size are interleaved and the best kept, so that warm-up and frequency
    scaling do not favour one size."""
    built = {count: build(count, seed=count) for count in SIZES}
    excluded = frozenset(NodeId(f"node-{i:06d}") for i in range(3))
    rng = random.Random(1)
    choose_us = dict.fromkeys(SIZES, math.inf)
    excluding_us = dict.fromkeys(SIZES, math.inf)
    for _ in range(REPEATS):
        for count, (router, _) in built.items():

            def choose(router: Router = router) -> None:
                router.choose(MODEL, now=1.0, rng=rng)

            def choose_excluding(router: Router = router) -> None:
                router.choose(MODEL, now=1.0, rng=rng, exclude=excluded)

            choose_us[count] = min(choose_us[count], batch_us(choose))
            excluding_us[count] = min(excluding_us[count], batch_us(choose_excluding))
    results = []
    for count, (router, in_flight) in built.items():
        started_us, finished_us = bookkeeping_us(router, in_flight, rng)
        results.append(
            Result(count, choose_us[count], excluding_us[count], started_us, finished_us)
        )
    return results


def main() -> None:
    global SIZES, PICKS, REPEATS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        SIZES, PICKS, REPEATS = (10, 1_000), 2_000, 2
    results = measure()
    base = results[0]
    headers = (
        "nodes",
        "choose µs",
        "vs 10",
        "choose, 3 excl. µs",
        "vs 10",
        "job_started µs",
        "job_finished µs",
        "cycle µs",
    )
    rows = [
        (
            f"{r.nodes:,}",
            f"{r.choose_us:.2f}",
            f"{r.choose_us / base.choose_us:.2f}",
            f"{r.choose_excluding_us:.2f}",
            f"{r.choose_excluding_us / base.choose_excluding_us:.2f}",
            f"{r.started_us:.2f}",
            f"{r.finished_us:.2f}",
            f"{r.choose_us + r.started_us + r.finished_us:.2f}",
        )
        for r in results
    ]
    title = "Routing one model: µs per call"
    caption = (
        f"choose: best of {REPEATS} batches of {PICKS:,}; job_started/job_finished: median per "
        "call under steady load; cycle = choose + job_started + job_finished"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(" | ".join(headers))
        for row in rows:
            print(" | ".join(row))
        print(caption)
    else:
        table = Table(title=title, caption=caption)
        for header in headers:
            table.add_column(header, justify="right")
        for row in rows:
            table.add_row(*row)
        Console(width=120).print(table)
    largest = results[-1]
    verdict = "met" if largest.choose_us < TARGET_US else "MISSED"
    growth = largest.choose_us / base.choose_us
    log_growth = math.log(largest.nodes) / math.log(base.nodes)
    print(
        f"Target: under {TARGET_US:.0f} µs per pick at {largest.nodes:,} nodes ({verdict}: "
        f"{largest.choose_us:.2f} µs), growing no faster than log n (log n grows "
        f"{log_growth:.1f}-fold from {base.nodes:,} to {largest.nodes:,} nodes; choose grew "
        f"{growth:.2f}-fold)."
    )
    harness.report(
        "routing", f"< {TARGET_US:.0f} µs per pick at {largest.nodes:,} nodes",
        f"{largest.choose_us:.2f} µs", largest.choose_us < TARGET_US, quick=args.quick,
    )


if __name__ == "__main__":
    main()
