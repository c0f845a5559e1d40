"""The estimator agrees with the daily fold on the day it describes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.points import (
    DAY_S,
    Contribution,
    History,
    NodeFacts,
    PointsConstants,
    compute_day,
    estimate,
)
from protocol.ids import ModelId

Builder = Callable[..., list[Contribution]]
FactsBuilder = Callable[..., NodeFacts]

DAY = date(2025, 3, 10)  # the builders' default day
MODEL = ModelId("gemma-3-270m")
CONSTANTS = PointsConstants()


@settings(max_examples=100)
# At least ~1,000 expected tokens, so that serving whole tokens moves model value < 0.1%.
@given(st.floats(1.0, 300.0), st.floats(0.25, 1.0), st.integers(0, 40))
def test_estimate_matches_compute_day_on_the_equivalent_history(
    make_day: Builder, make_facts: FactsBuilder, tok_s: float, uptime: float, days: int
) -> None:
    projected = estimate(tok_s, MODEL, uptime, days, CONSTANTS)
    tokens = round(tok_s * DAY_S * uptime * CONSTANTS.estimate_utilisation)
    records = make_day("n", online=uptime, tok_s=tok_s, tokens=tokens, jobs=1)
    (node,) = compute_day(History(records), [make_facts("n", age_days=days)], DAY, CONSTANTS).nodes
    assert node.terms.uptime == pytest.approx(projected.uptime)
    assert node.terms.hardware == pytest.approx(projected.hardware)
    assert node.terms.model_value == pytest.approx(projected.model_value, rel=1e-3, abs=1e-3)
    assert node.terms.trust == pytest.approx(projected.trust)
    assert node.score == pytest.approx(projected.points_per_day, rel=1e-3, abs=1e-3)


def test_estimate_terms() -> None:
    projected = estimate(80.0, MODEL, 1.0, 14, CONSTANTS)
    assert projected.tokens == pytest.approx(80.0 * 86_400 * 0.05)
    assert projected.hardware == pytest.approx(80.0**0.5)
    assert projected.trust == 1.0
    assert projected.points_per_day == pytest.approx(projected.hardware + projected.tokens**0.5)
    new = estimate(80.0, MODEL, 1.0, 0, CONSTANTS)
    assert new.points_per_day == pytest.approx(0.1 * projected.points_per_day)
    assert estimate(80.0, MODEL, 0.5, 14, CONSTANTS).uptime == 0.5


def test_estimate_with_several_models() -> None:
    models = [MODEL, ModelId("llama-3.2-3b"), ModelId("qwen-2.5-7b")]
    single = estimate(40.0, MODEL, 1.0, 14, CONSTANTS)
    several = estimate(40.0, models, 1.0, 14, CONSTANTS)
    assert several.extra_models == 2
    assert several.model_value == pytest.approx(1.2 * single.model_value)
    listed = PointsConstants(in_demand_models=frozenset({MODEL, models[1]}))
    assert estimate(40.0, models, 1.0, 14, listed).extra_models == 1


@given(st.floats(0.0, 500.0), st.floats(0.0, 500.0), st.floats(0.0, 1.0), st.floats(0, 30))
def test_estimate_never_falls_with_faster_hardware(
    a: float, b: float, uptime: float, days: float
) -> None:
    low, high = sorted((a, b))
    assert (
        estimate(low, MODEL, uptime, days, CONSTANTS).points_per_day
        <= estimate(high, MODEL, uptime, days, CONSTANTS).points_per_day
    )


@pytest.mark.parametrize(
    ("tok_s", "uptime", "days"), [(-1.0, 0.5, 1.0), (10.0, 1.5, 1.0), (10.0, 0.5, -2.0)]
)
def test_estimate_rejects_impossible_setups(tok_s: float, uptime: float, days: float) -> None:
    with pytest.raises(ValueError):
        estimate(tok_s, MODEL, uptime, days, CONSTANTS)
