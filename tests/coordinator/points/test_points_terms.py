"""The score's terms as pure functions of numbers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.points import PointsConstants, terms
from protocol.ids import ModelId

CONSTANTS = PointsConstants()
scores = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


def weighted_total(values: list[float], decay: float = CONSTANTS.operator_decay) -> float:
    weights = terms.operator_weights(values, decay)
    return sum(value * weight for value, weight in zip(values, weights, strict=True))


def test_four_times_the_speed_doubles_the_hardware_term() -> None:
    assert terms.hardware(80.0) == pytest.approx(2 * terms.hardware(20.0))
    assert terms.hardware(None) == 0.0


def test_operator_weights_are_the_diminishing_series_best_first() -> None:
    assert terms.operator_weights([3.0, 9.0, 5.0, 1.0], 0.85) == pytest.approx(
        [0.7225, 1.0, 0.85, 0.614125]
    )
    assert terms.operator_ranks([3.0, 9.0, -4.0, 3.0]) == [2, 1, None, 3]


def test_negative_scores_count_in_full() -> None:
    assert terms.operator_weights([10.0, -50.0, 10.0], 0.85) == pytest.approx([1.0, 1.0, 0.85])


@given(st.lists(scores, max_size=12), scores)
def test_adding_a_node_never_lowers_the_operators_total(
    existing: list[float], added: float
) -> None:
    before = weighted_total(existing)
    assert weighted_total([*existing, added]) >= before - 1e-9 * max(1.0, before)


@given(st.lists(scores, min_size=1, max_size=12))
def test_a_farm_earns_less_than_the_same_nodes_run_by_separate_operators(
    values: list[float],
) -> None:
    assert weighted_total(values) <= sum(values) + 1e-9


def test_trust_ramps_from_ten_percent_to_full_over_fourteen_days() -> None:
    assert terms.trust(0, CONSTANTS) == pytest.approx(0.10)
    assert terms.trust(7, CONSTANTS) == pytest.approx(0.55)
    assert terms.trust(14, CONSTANTS) == 1.0
    assert terms.trust(400, CONSTANTS) == 1.0
    assert terms.trust(3, PointsConstants(trust_ramp_days=0)) == 1.0


@given(st.floats(0, 100), st.floats(0, 100))
def test_trust_never_falls_with_more_clean_days(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert terms.trust(low, CONSTANTS) <= terms.trust(high, CONSTANTS)


def test_pass_rate_counts_checks_and_jobs_and_is_zero_when_unverified() -> None:
    assert terms.pass_rate(90, 10, 45, 5) == pytest.approx(135 / 150)
    assert terms.pass_rate(0, 0, 0, 0) == 0.0


def test_online_fraction_is_capped_at_the_whole_day() -> None:
    assert terms.online_fraction(43_200) == 0.5
    assert terms.online_fraction(200_000) == 1.0


def test_model_value_bonus_and_collapse() -> None:
    assert terms.model_value(10_000, 0, False, CONSTANTS) == pytest.approx(100.0)
    assert terms.model_value(10_000, 2, False, CONSTANTS) == pytest.approx(120.0)
    assert terms.model_value(10_000, 2, True, CONSTANTS) == pytest.approx(6.0)


def test_penalties_forgive_the_allowance() -> None:
    constants = PointsConstants(failed_check_allowance=30, failed_check_penalty=0.5)
    assert terms.penalties(0, 30, 0.0, constants) == 0.0
    assert terms.penalties(0, 40, 0.0, constants) == 5.0
    assert terms.penalties(2, 40, 7.0, constants) == 2 * constants.fake_model_penalty + 12.0


def test_in_demand_by_share_or_by_list() -> None:
    network = {ModelId("a"): 990, ModelId("b"): 10, ModelId("c"): 5, ModelId("d"): 0}
    assert terms.in_demand(network, PointsConstants(in_demand_min_share=0.01)) == {"a"}
    assert terms.in_demand(network, PointsConstants(in_demand_min_share=0.0)) == {"a", "b", "c"}
    listed = PointsConstants(in_demand_models=frozenset({ModelId("d")}))
    assert terms.in_demand(network, listed) == {"d"}


def test_earnings_is_the_product() -> None:
    assert terms.earnings(0.5, 4.0, 6.0, 0.5) == 2.5
    assert math.isclose(terms.earnings(1.0, terms.hardware(16.0), 0.0, 1.0), 4.0)
