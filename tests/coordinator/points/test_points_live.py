"""Scoring only what changed gives what scoring everything gives (pure).

Pages read the standings between two full recomputes: the history is extended with the records
seen since (regrouping only their days) and only those days are scored again. For any history and
any records added to it, both must equal folding and scoring everything from scratch.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.points import (
    DAY_S,
    Contribution,
    History,
    NodeFacts,
    OperatorId,
    PointsConstants,
    day_start,
    utc_day,
)
from coordinator.points.standings import rescored, score_history
from protocol.ids import NodeId

# Spelled out, not taken from conftest's builders: hypothesis and function fixtures do not mix,
# and these histories need only a few kinds of day.
DAY = date(2025, 3, 10)

NODES = ("node-a", "node-b", "node-c")
CONSTANTS = PointsConstants()

day_spec = st.fixed_dictionaries({
    "online": st.sampled_from([0.0, 0.5, 1.0]),
    "failed": st.sampled_from([0, 0, 30]),
    "jobs": st.integers(0, 3),
    "tokens": st.integers(0, 500),
    "tok_s": st.one_of(st.none(), st.floats(1.0, 90.0)),
    "fakes": st.sampled_from([0, 0, 0, 1]),
    "penalty": st.sampled_from([0.0, 0.0, 2.5]),
})
histories = st.lists(
    st.tuples(st.sampled_from(NODES), st.integers(0, 9), day_spec), min_size=1, max_size=8
)


Entry = tuple[str, int, dict[str, object]]


def records_of(make_day: Any, entries: list[Entry]) -> list[Contribution]:
    records: list[Contribution] = []
    for node, offset, spec in entries:
        records.extend(make_day(node, DAY + timedelta(days=offset), **spec))
    return records


def node_facts() -> dict[NodeId, NodeFacts]:
    """Two operators; node-c first seen later than the others."""
    return {
        NodeId(node): NodeFacts(
            node_id=NodeId(node), operator=OperatorId(operator),
            first_seen=day_start(DAY) + (DAY_S * 2.5 if node == "node-c" else 3600.0),
        )
        for node, operator in (("node-a", "wallet-a"), ("node-b", "wallet-a"),
                               ("node-c", "wallet-c"))
    }


@settings(max_examples=25, deadline=None)
@given(histories, st.data())
def test_extending_regroups_only_the_new_days_and_equals_a_fresh_fold(
    make_day: Any, entries: list[Entry], data: st.DataObject
) -> None:
    records = records_of(make_day, entries)
    newer = data.draw(st.sets(st.integers(0, len(records) - 1)), label="newer")
    old = [record for index, record in enumerate(records) if index not in newer]
    added = [record for index, record in enumerate(records) if index in newer]
    # Ties keep the order given: the history's own records first, as extended() promises.
    extended, fresh = History(old).extended(added), History([*old, *added])
    assert extended == fresh
    assert extended.days == fresh.days
    assert set(extended.caught_nodes()) == set(fresh.caught_nodes())
    for day in (DAY + timedelta(days=offset) for offset in range(11)):
        assert extended.node_days(day) == fresh.node_days(day)
        for node in NODES:
            node_id = NodeId(node)
            assert extended.measured_tok_s(node_id, day) == fresh.measured_tok_s(node_id, day)
    for node in NODES:
        node_id = NodeId(node)
        assert extended.fake_verdict_times(node_id) == fresh.fake_verdict_times(node_id)
    last = DAY + timedelta(days=10)
    assert score_history(extended, node_facts(), last, CONSTANTS, 30) == score_history(
        fresh, node_facts(), last, CONSTANTS, 30
    )


@settings(max_examples=25, deadline=None)
@given(histories, st.data(), st.integers(0, 1), st.sampled_from([3, 30]))
def test_rescoring_the_days_since_equals_scoring_everything(
    make_day: Any, entries: list[Entry], data: st.DataObject, days_ago: int, max_days: int
) -> None:
    records = records_of(make_day, entries)
    today = DAY + timedelta(days=10)
    newer = data.draw(st.sets(st.integers(0, len(records) - 1), min_size=1), label="newer")
    old = [record for index, record in enumerate(records) if index not in newer]
    added = [record for index, record in enumerate(records) if index in newer]
    previous = score_history(
        History(old), node_facts(), today - timedelta(days=days_ago), CONSTANTS, max_days
    )
    first = utc_day(min(record.at for record in added))
    everything = History(old).extended(added)
    live = rescored(previous, everything, node_facts(), first, today, max_days)
    everything_fresh = History([*old, *added])
    assert live == score_history(everything_fresh, node_facts(), today, CONSTANTS, max_days)


def test_nothing_new_today_still_scores_today_as_it_stands(make_day: Any) -> None:
    records = records_of(make_day, [("node-a", 0, {"tokens": 40, "tok_s": 20.0})])
    previous = score_history(History(records), node_facts(), DAY, CONSTANTS, 30)
    later = DAY + timedelta(days=2)
    live = rescored(previous, History(records), node_facts(), later, later, 30)
    assert live == score_history(History(records), node_facts(), later, CONSTANTS, 30)
    assert live.days[-1].day == later
    assert live.usage_window(1)[0].tokens == 0
