"""The points estimator on the product page: a rough daily projection from a node's setup.

It runs the same terms as the daily fold on a synthetic day: the node is online ``uptime`` of
the day and passes every check, its measured speed is ``tok_s``, real demand uses
``estimate_utilisation`` of its capacity, and ``days_online`` clean days stand behind it.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from coordinator.contributions import DAY_S
from coordinator.points import terms
from coordinator.settings.points_constants import PointsConstants
from protocol.ids import ModelId


@dataclass(frozen=True, slots=True)
class EstimateTerms:
    """The projected terms of one day and the points they come to."""

    uptime: float
    hardware: float
    tokens: float
    extra_models: int
    model_value: float
    trust: float
    points_per_day: float


def estimate(
    tok_s: float,
    model: ModelId | Collection[ModelId],
    uptime: float,
    days_online: float,
    constants: PointsConstants,
) -> EstimateTerms:
    """Points a node would earn in a day: ``tok_s`` measured speed, serving ``model`` (or several
    models), reachable and passing checks ``uptime`` (0 to 1) of the day, after ``days_online``
    clean days.

    Expected tokens are ``tok_s * 86400 * uptime * estimate_utilisation``. With several models,
    each beyond the first adds the in-demand bonus if it is on ``in_demand_models``; when that list
    is unset, live demand is unknown here and every model is assumed in demand.
    """
    if not (math.isfinite(tok_s) and tok_s >= 0.0):
        raise ValueError(f"tok_s must be finite and non-negative, got {tok_s!r}")
    if not 0.0 <= uptime <= 1.0:
        raise ValueError(f"uptime must lie in [0, 1], got {uptime!r}")
    if not (math.isfinite(days_online) and days_online >= 0.0):
        raise ValueError(f"days_online must be finite and non-negative, got {days_online!r}")
    models = frozenset({model} if isinstance(model, str) else model)
    if constants.in_demand_models is not None:
        models &= constants.in_demand_models
    extra = max(0, len(models) - 1)
    tokens = tok_s * DAY_S * uptime * constants.estimate_utilisation
    hardware = terms.hardware(tok_s)
    value = terms.model_value(tokens, extra, False, constants)
    trust = terms.trust(days_online, constants)
    return EstimateTerms(
        uptime=uptime,
        hardware=hardware,
        tokens=tokens,
        extra_models=extra,
        model_value=value,
        trust=trust,
        points_per_day=terms.earnings(uptime, hardware, value, trust),
    )
