"""Hourly batching of contributions is exact, and online time is cut at hours and midnights."""

from __future__ import annotations

import random
from datetime import date

from coordinator.points import (
    DAY_S,
    History,
    JobResult,
    Measurement,
    NodeFacts,
    OnlineTime,
    OperatorId,
    PointsConstants,
    ProbeResult,
    compute_day,
    day_start,
)
from coordinator.points.batches import ContributionBatcher, OnlineTracker, hour_spans
from protocol.ids import ModelId, NodeId

DAY = date(2025, 3, 10)
MODEL = ModelId("gemma-3-270m")
NODES = [NodeId(f"node-{i}") for i in range(4)]


def singles(seed: int) -> list[ProbeResult | JobResult | Measurement | OnlineTime]:
    """A day of single observations, as the scheduler, gateway and upkeep produce them."""
    rng = random.Random(seed)
    start = day_start(DAY)
    records: list[ProbeResult | JobResult | Measurement | OnlineTime] = []
    for node in NODES:
        for minute in range(0, 1440, 3):
            at = start + minute * 60 + rng.random() * 60
            records.append(ProbeResult(node_id=node, at=at, model=MODEL,
                                       passed=rng.random() > 0.05))
            if rng.random() < 0.3:
                records.append(JobResult(node_id=node, at=at, model=MODEL,
                                         completed=rng.random() > 0.1, tokens=rng.randrange(80)))
            # As the tracker credits it: never across an hour.
            records.append(OnlineTime(node_id=node, at=start + minute * 60, seconds=150.0))
        records.append(Measurement(node_id=node, at=start + 3600 * 5, model=MODEL,
                                   tok_s=20.0 + rng.random()))
    return records


def test_batching_scores_exactly_as_the_single_records_do() -> None:
    records = singles(1)
    batcher = ContributionBatcher()
    batcher.extend(records)
    batches = batcher.take(day_start(DAY) + DAY_S)
    assert len(batcher) == 0
    assert len(batches) < len(records) / 10
    assert all(b.at % 3600 == 0 for b in batches)
    facts = [NodeFacts(node_id=n, operator=OperatorId("w"), first_seen=0.0) for n in NODES]
    constants = PointsConstants()
    assert compute_day(History(batches), facts, DAY, constants) == compute_day(
        History(records), facts, DAY, constants
    )


def test_only_finished_hours_leave_until_everything_is_taken() -> None:
    batcher = ContributionBatcher()
    start = day_start(DAY)
    batcher.add(ProbeResult(node_id=NODES[0], at=start + 10, model=MODEL, passed=True))
    batcher.add(ProbeResult(node_id=NODES[0], at=start + 3700, model=MODEL, passed=True))
    assert batcher.preview() and len(batcher.preview()) == 2
    first = batcher.take(start + 3650)
    assert [(r.at, r.count) for r in first] == [(start, 1)]  # type: ignore[union-attr]
    assert batcher.take(start + 3650) == []
    rest = batcher.take(None)
    assert [r.at for r in rest] == [start + 3600]


def test_online_time_is_credited_from_the_last_reading_and_cut_at_every_hour() -> None:
    tracker = OnlineTracker()
    midnight = day_start(DAY)
    node = NODES[0]
    assert tracker.tick({node: midnight - 1800}, midnight - 1800) == []
    spans = tracker.tick({node: midnight - 1800}, midnight + 5400)
    assert [(s.at, s.seconds) for s in spans] == [
        (midnight - 1800, 1800.0), (midnight, 3600.0), (midnight + 3600, 1800.0)
    ]
    assert tracker.tick({}, midnight + 6000) == [], "offline: nothing credited"
    back = tracker.tick({node: midnight + 7000}, midnight + 7200)
    assert [(s.at, s.seconds) for s in back] == [(midnight + 7000, 200.0)]
    assert hour_spans(10.0, 10.0) == []
