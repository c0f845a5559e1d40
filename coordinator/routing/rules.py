"""The routing rules that need no memory: floor, ramp-up and spare capacity."""

from __future__ import annotations

import math

from coordinator.routing.constants import RoutingConstants

SECONDS_PER_DAY = 86_400.0


def passes_floor(declared_tok_s: float | None, measured_tok_s: float | None, floor: float) -> bool:
    """Whether a node is fast enough: its measurement decides, else its declaration, else yes."""
    if measured_tok_s is not None:
        return measured_tok_s >= floor
    return declared_tok_s is None or declared_tok_s >= floor


def ramp_fraction(age_s: float, constants: RoutingConstants) -> float:
    """The fraction of its slots a node ``age_s`` seconds after first being seen may fill."""
    ramp_s = constants.ramp_days * SECONDS_PER_DAY
    start = constants.ramp_start_fraction
    if ramp_s <= 0.0 or age_s >= ramp_s:
        return 1.0
    if age_s <= 0.0:
        return start
    return start + (1.0 - start) * (age_s / ramp_s)


def admitted_capacity(slots: int, fraction: float) -> int:
    """How many concurrent jobs a node is given: never fewer than one."""
    return max(1, math.floor(slots * fraction))


def spare_capacity(capacity: int, in_flight: int) -> float:
    """The share of a node's admitted capacity that is free; zero or less means full."""
    return (capacity - in_flight) / capacity
