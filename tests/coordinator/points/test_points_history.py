"""The history: frozen records, grouped per node per UTC day, batches equal to singles."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from coordinator.points import (
    CONTRIBUTION_ADAPTER,
    AuthenticityVerdict,
    Contribution,
    History,
    JobResult,
    Measurement,
    NodeFacts,
    OnlineTime,
    OperatorId,
    Penalty,
    PointsConstants,
    ProbeResult,
    compute_day,
    day_start,
    utc_day,
)
from protocol.ids import ModelId, NodeId

DAY = date(2025, 3, 10)
START = day_start(DAY)
NODE = NodeId("n")
MODEL = ModelId("gemma-3-270m")
FACTS = NodeFacts(node_id=NODE, operator=OperatorId("w"), first_seen=START - 30 * 86_400.0)


def test_days_are_utc_days() -> None:
    assert utc_day(START) == DAY
    assert utc_day(START - 0.001) == DAY - timedelta(days=1)
    assert utc_day(START + 86_399.999) == DAY


def test_grouping_folds_each_node_day() -> None:
    history = History(
        [
            OnlineTime(node_id=NODE, at=START + 3_600, seconds=3_600),
            OnlineTime(node_id=NODE, at=START, seconds=1_800),
            ProbeResult(node_id=NODE, at=START + 60, model=MODEL, passed=True, count=58),
            ProbeResult(node_id=NODE, at=START + 60, model=MODEL, passed=False, count=2),
            JobResult(node_id=NODE, at=START + 5, model=MODEL, completed=True, tokens=900, count=3),
            JobResult(node_id=NODE, at=START + 6, model=MODEL, completed=False, tokens=40),
            Measurement(node_id=NODE, at=START + 7, model=MODEL, tok_s=33),
            AuthenticityVerdict(node_id=NODE, at=START + 8, model=MODEL, genuine=True),
            Penalty(node_id=NODE, at=START + 9, points=5, reason="abuse"),
            ProbeResult(node_id=NODE, at=START + 86_400, model=MODEL, passed=True),
        ]
    )
    assert history.days == (DAY, DAY + timedelta(days=1))
    day = history.node_days(DAY)[NODE]
    assert (day.probes_passed, day.probes_failed) == (58, 2)
    assert (day.jobs_completed, day.jobs_failed, day.tokens) == (3, 1, 940)
    assert day.online_s == 5_400.0
    assert day.tok_s_samples == (33.0,)
    assert (day.genuine_verdicts, day.fake_verdicts) == (1, ())
    assert (day.penalty_points, day.penalty_reasons) == (5.0, ("abuse",))
    assert history.node_days(DAY + timedelta(days=1))[NODE].probes_passed == 1
    assert history.node_days(DAY + timedelta(days=2)) == {}
    assert history.measured_tok_s(NODE, DAY + timedelta(days=9)) == (33.0, False)


def test_history_is_ordered_by_time_and_extending_leaves_it_unchanged() -> None:
    late = OnlineTime(node_id=NODE, at=START + 10, seconds=1)
    early = OnlineTime(node_id=NODE, at=START, seconds=1)
    tie = OnlineTime(node_id=NodeId("m"), at=START + 10, seconds=2)
    history = History([late, early, tie])
    assert history.contributions == (early, late, tie)
    longer = history.extended([OnlineTime(node_id=NODE, at=START - 10, seconds=3)])
    assert len(history) == 3 and len(longer) == 4
    assert history == History([late, early, tie])
    assert history != longer
    with pytest.raises(dataclasses.FrozenInstanceError):
        late.seconds = 9.0  # type: ignore[misc]


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 50)), min_size=1, max_size=20))
def test_batched_probes_score_exactly_as_single_ones(batches: list[tuple[bool, int]]) -> None:
    batched: list[Contribution] = [OnlineTime(node_id=NODE, at=START, seconds=86_400)]
    single: list[Contribution] = list(batched)
    for index, (passed, count) in enumerate(batches):
        at = START + 60.0 * index
        batched.append(ProbeResult(node_id=NODE, at=at, model=MODEL, passed=passed, count=count))
        single.extend(
            ProbeResult(node_id=NODE, at=at, model=MODEL, passed=passed) for _ in range(count)
        )
    constants = PointsConstants()
    assert compute_day(History(batched), [FACTS], DAY, constants) == compute_day(
        History(single), [FACTS], DAY, constants
    )


def test_contributions_round_trip_through_json() -> None:
    records: list[Contribution] = [
        ProbeResult(node_id=NODE, at=START, model=MODEL, passed=False, count=4),
        JobResult(node_id=NODE, at=START, model=MODEL, completed=True, tokens=10),
        Measurement(node_id=NODE, at=START, model=MODEL, tok_s=12.5),
        OnlineTime(node_id=NODE, at=START, seconds=60),
        AuthenticityVerdict(node_id=NODE, at=START, model=MODEL, genuine=False),
        Penalty(node_id=NODE, at=START, points=3, reason="spam"),
    ]
    for record in records:
        assert CONTRIBUTION_ADAPTER.validate_json(CONTRIBUTION_ADAPTER.dump_json(record)) == record


@pytest.mark.parametrize(
    "make",
    [
        lambda: ProbeResult(node_id=NODE, at=START, model=MODEL, passed=True, count=0),
        lambda: JobResult(node_id=NODE, at=START, model=MODEL, completed=True, tokens=-1),
        lambda: Measurement(node_id=NODE, at=START, model=MODEL, tok_s=float("nan")),
        lambda: OnlineTime(node_id=NODE, at=START, seconds=90_000),
        lambda: Penalty(node_id=NODE, at=START, points=-1, reason="x"),
        lambda: OnlineTime(node_id=NODE, at=float("inf"), seconds=1),
    ],
)
def test_impossible_records_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_every_constant_is_described_for_operators() -> None:
    for name, field in PointsConstants.model_fields.items():
        assert field.description, name


@pytest.mark.parametrize(
    "tiers",
    [
        ({"name": "A", "min_points": 5},),
        ({"name": "A", "min_points": 0}, {"name": "B", "min_points": 0}),
        ({"name": "A", "min_points": 0}, {"name": "A", "min_points": 10}),
    ],
)
def test_tiers_must_start_at_zero_and_rise(tiers: tuple[dict[str, object], ...]) -> None:
    with pytest.raises(ValidationError):
        PointsConstants.model_validate({"tiers": tiers})
