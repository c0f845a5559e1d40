"""The leaderboard and a provider's breakdown: rank by points, never by volume."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.points import (
    Contribution,
    DayResult,
    History,
    NodeFacts,
    OperatorId,
    PointsConstants,
    Tier,
    compute_day,
    compute_range,
    leaderboard,
    provider_breakdown,
)

Builder = Callable[..., list[Contribution]]
FactsBuilder = Callable[..., NodeFacts]

DAY = date(2025, 3, 10)  # the builders' default day
CONSTANTS = PointsConstants()


def board_for(
    records: list[Contribution], node_facts: list[NodeFacts], day: date = DAY
) -> tuple[DayResult, ...]:
    return (compute_day(History(records), node_facts, day, CONSTANTS),)


def test_a_high_volume_faker_ranks_below_an_honest_smaller_node(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    records = [
        *make_day("faker", tok_s=140.0, tokens=50_000_000, jobs=90_000, fakes=1),
        *make_day("honest", tok_s=20.0, tokens=200_000, jobs=400),
    ]
    node_facts = [make_facts("faker", "wallet-big"), make_facts("honest", "wallet-small")]
    rows = leaderboard(board_for(records, node_facts), CONSTANTS)
    assert [row.provider for row in rows] == ["wallet-small", "wallet-big"]
    assert rows[1].tokens > rows[0].tokens and rows[1].jobs > rows[0].jobs
    assert rows[1].points == 0.0


def test_persistent_offenders_are_hidden(make_day: Builder, make_facts: FactsBuilder) -> None:
    records = [
        *make_day("cheat", DAY - timedelta(days=2), fakes=2),
        *make_day("cheat", tokens=1_000_000, fakes=1),
        *make_day("cheat-2", tokens=5_000_000),
        *make_day("fair", tokens=10_000),
    ]
    node_facts = [
        make_facts("cheat", "wallet-cheat"),
        make_facts("cheat-2", "wallet-cheat"),
        make_facts("fair", "wallet-fair"),
    ]
    results = board_for(records, node_facts)
    assert [row.provider for row in leaderboard(results, CONSTANTS)] == ["wallet-fair"]
    assert [
        row.provider for row in leaderboard(results, CONSTANTS, hidden={OperatorId("wallet-fair")})
    ] == []
    breakdown = provider_breakdown(results, OperatorId("wallet-cheat"), CONSTANTS)
    assert breakdown.hidden
    assert [node.removed for node in breakdown.nodes] == [True, False]


def test_operator_nodes_count_one_then_85_then_72_percent(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    records = [record for node in ("a", "b", "c") for record in make_day(node, tokens=10_000)]
    farm = [make_facts(node, "wallet-farm") for node in ("a", "b", "c")]
    (row,) = leaderboard(board_for(records, farm), CONSTANTS)
    assert row.points == pytest.approx(100.0 * (1 + 0.85 + 0.7225))
    assert row.nodes == 3


def test_equal_points_are_ordered_by_provider(make_day: Builder, make_facts: FactsBuilder) -> None:
    records = [record for node in ("x", "y", "z") for record in make_day(node, tokens=2_500)]
    node_facts = [
        make_facts("x", "wallet-c"),
        make_facts("y", "wallet-a"),
        make_facts("z", "wallet-b"),
    ]
    rows = leaderboard(board_for(records, node_facts), CONSTANTS)
    assert [(row.rank, row.provider) for row in rows] == [
        (1, "wallet-a"),
        (2, "wallet-b"),
        (3, "wallet-c"),
    ]


def test_points_sum_over_the_range_and_never_go_negative(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    records = [
        *make_day("n", DAY, tokens=10_000),
        *make_day("n", DAY + timedelta(days=1), tokens=40_000),
        *make_day("p", DAY, failed=1_000),
    ]
    node_facts = [make_facts("n"), make_facts("p", "wallet-p")]
    results = compute_range(History(records), node_facts, DAY, DAY + timedelta(days=1), CONSTANTS)
    rows = {row.provider: row for row in leaderboard(results, CONSTANTS)}
    assert rows[OperatorId("wallet-a")].points == pytest.approx(100.0 + 200.0)
    assert rows[OperatorId("wallet-a")].tokens == 50_000
    assert rows[OperatorId("wallet-p")].points == 0.0


def test_tiers_come_from_the_constants(make_day: Builder, make_facts: FactsBuilder) -> None:
    constants = PointsConstants(
        tiers=(Tier(name="Seed", min_points=0), Tier(name="Oak", min_points=150)),
    )
    records = [*make_day("a", tokens=10_000), *make_day("b", tokens=40_000)]
    node_facts = [make_facts("a", "wallet-a"), make_facts("b", "wallet-b")]
    results = (compute_day(History(records), node_facts, DAY, constants),)
    assert [(row.provider, row.tier) for row in leaderboard(results, constants)] == [
        ("wallet-b", "Oak"),
        ("wallet-a", "Seed"),
    ]
    assert CONSTANTS.tier_for(0) == "Bronze"
    assert CONSTANTS.tier_for(10_000) == "Gold"


def test_tok_s_is_the_best_nodes_typical_speed(make_day: Builder, make_facts: FactsBuilder) -> None:
    records = [
        *make_day("slow", tok_s=20.0),
        *make_day("fast", tok_s=(70.0, 80.0, 200.0)),
    ]
    node_facts = [make_facts("slow"), make_facts("fast")]
    (row,) = leaderboard(board_for(records, node_facts), CONSTANTS)
    assert row.tok_s == 80.0


def test_breakdown_shows_every_term_and_matches_the_board(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    records = [*make_day("a", tok_s=40.0, tokens=90_000), *make_day("b", online=0.5, tokens=10)]
    node_facts = [make_facts("a"), make_facts("b", age_days=3)]
    results = board_for(records, node_facts)
    breakdown = provider_breakdown(results, OperatorId("wallet-a"), CONSTANTS)
    (row,) = leaderboard(results, CONSTANTS)
    assert breakdown.points == pytest.approx(row.points)
    assert results[0].operator_points() == {"wallet-a": pytest.approx(row.points)}
    assert breakdown.tier == row.tier
    first, second = (node.days[0] for node in breakdown.nodes)
    assert (first.operator_rank, first.operator_weight) == (1, 1.0)
    assert (second.operator_rank, second.operator_weight) == (2, 0.85)
    assert second.terms.online_fraction == 0.5
    assert second.terms.trust == pytest.approx(0.1 + 0.9 * 3 / 14)
    assert second.weighted_score == pytest.approx(0.85 * second.terms.score)


def test_days_under_other_constants_are_refused(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    results = board_for(make_day("a"), [make_facts("a")])
    with pytest.raises(ValueError, match="recompute"):
        leaderboard(results, PointsConstants(version="2"))


@settings(max_examples=60)
@given(
    st.lists(st.integers(0, 4_000_000), min_size=1, max_size=6),
    st.integers(0, 4_000_000),
    st.floats(0.0, 1.0),
)
def test_adding_a_node_never_lowers_the_operators_points(
    make_day: Builder,
    make_facts: FactsBuilder,
    served: list[int],
    added_tokens: int,
    added_online: float,
) -> None:
    records = [
        record
        for index, tokens in enumerate(served)
        for record in make_day(f"n{index}", tokens=tokens)
    ]
    node_facts = [make_facts(f"n{index}") for index in range(len(served))]
    (before,) = leaderboard(board_for(records, node_facts), CONSTANTS)
    grown = [*records, *make_day("added", tokens=added_tokens, online=added_online)]
    (after,) = leaderboard(board_for(grown, [*node_facts, make_facts("added")]), CONSTANTS)
    assert after.points >= before.points - 1e-9 * max(1.0, before.points)
