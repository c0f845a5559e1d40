"""The memoryless rules: speed floor, ramp-up, admitted and spare capacity, constants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from coordinator.routing import (
    RoutingConstants,
    admitted_capacity,
    passes_floor,
    ramp_fraction,
    spare_capacity,
)

DAY = 86_400.0
CONSTANTS = RoutingConstants()


def test_constants_defaults_are_the_published_promise() -> None:
    assert CONSTANTS.floor_tok_s == 5.0
    assert CONSTANTS.breaker_failures == 3
    assert CONSTANTS.breaker_window_s == 60.0
    assert CONSTANTS.breaker_park_s == 15.0
    assert CONSTANTS.health_window_days == 14
    assert CONSTANTS.ramp_start_fraction == 0.25
    assert CONSTANTS.ramp_days == 7.0


def test_constants_are_frozen_strict_and_described() -> None:
    with pytest.raises(ValidationError):
        CONSTANTS.floor_tok_s = 1.0  # type: ignore[misc, unused-ignore]
    with pytest.raises(ValidationError):
        RoutingConstants(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        RoutingConstants(ramp_start_fraction=0.0)
    schema = RoutingConstants.model_json_schema()
    for name, field in schema["properties"].items():
        assert field.get("description"), name
    assert RoutingConstants.model_validate_json(CONSTANTS.model_dump_json()) == CONSTANTS


@pytest.mark.parametrize(
    ("declared", "measured", "expected"),
    [
        (None, None, True),
        (5.0, None, True),
        (4.99, None, False),
        (4.0, 5.0, True),
        (100.0, 4.9, False),
        (None, 4.9, False),
        (None, 5.0, True),
    ],
)
def test_floor_uses_measurement_else_declaration(
    declared: float | None, measured: float | None, expected: bool
) -> None:
    assert passes_floor(declared, measured, 5.0) is expected


def test_ramp_endpoints() -> None:
    assert ramp_fraction(0.0, CONSTANTS) == 0.25
    assert ramp_fraction(-DAY, CONSTANTS) == 0.25
    assert ramp_fraction(3.5 * DAY, CONSTANTS) == pytest.approx(0.625)
    assert ramp_fraction(7 * DAY, CONSTANTS) == 1.0
    assert ramp_fraction(70 * DAY, CONSTANTS) == 1.0
    assert ramp_fraction(0.0, RoutingConstants(ramp_days=0.0)) == 1.0


@given(st.floats(min_value=-DAY, max_value=10 * DAY), st.floats(min_value=0, max_value=10 * DAY))
def test_ramp_rises_monotonically_within_bounds(age: float, later_by: float) -> None:
    now, later = ramp_fraction(age, CONSTANTS), ramp_fraction(age + later_by, CONSTANTS)
    assert 0.25 <= now <= later <= 1.0


def test_admitted_capacity_floors_and_never_drops_below_one() -> None:
    assert admitted_capacity(8, 0.25) == 2
    assert admitted_capacity(8, 1.0) == 8
    assert admitted_capacity(3, 0.25) == 1
    assert admitted_capacity(1, 0.25) == 1
    assert admitted_capacity(7, 0.5) == 3


@given(st.integers(min_value=1, max_value=256), st.floats(min_value=0.25, max_value=1.0))
def test_admitted_capacity_bounds(slots: int, fraction: float) -> None:
    admitted = admitted_capacity(slots, fraction)
    assert 1 <= admitted <= slots
    assert admitted == max(1, math.floor(slots * fraction))


def test_spare_capacity() -> None:
    assert spare_capacity(4, 0) == 1.0
    assert spare_capacity(4, 1) == 0.75
    assert spare_capacity(4, 4) == 0.0
    assert spare_capacity(2, 3) < 0.0
    assert spare_capacity(2, 1) == spare_capacity(4, 2)
