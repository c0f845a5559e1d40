"""Each term of ``score = uptime * (hardware + model_value) * trust - penalties``, as a pure
function of plain numbers, so the fold, the estimator and the tests share one definition."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from coordinator.contributions import DAY_S
from coordinator.settings.points_constants import PointsConstants
from protocol.ids import ModelId


def online_fraction(online_s: float) -> float:
    """Share of the day the node was reachable, 0 to 1."""
    return min(1.0, max(0.0, online_s) / DAY_S)


def pass_rate(passed: int, failed: int, completed: int, not_completed: int) -> float:
    """Health checks passed plus jobs completed, over all checks and jobs attempted.

    A node with neither checks nor jobs is unverified and gets 0: nothing vouches for it.
    """
    attempted = passed + failed + completed + not_completed
    if attempted == 0:
        return 0.0
    return (passed + completed) / attempted


def uptime(online: float, rate: float) -> float:
    """The gate: the fraction of the day online times the pass rate, 0 to 1."""
    return online * rate


def hardware(tok_s: float | None) -> float:
    """√(measured tok/s): four times the speed doubles the term; never measured gives 0."""
    if tok_s is None:
        return 0.0
    return math.sqrt(max(0.0, tok_s))


def model_value(
    tokens: float, extra_models: int, collapsed: bool, constants: PointsConstants
) -> float:
    """√(tokens served) * (1 + bonus per extra in-demand model), collapsed to a small fraction on
    a day the node was caught serving a different model than it claims."""
    value = math.sqrt(max(0.0, tokens)) * (1.0 + constants.extra_model_bonus * max(0, extra_models))
    return value * constants.fake_model_collapse if collapsed else value


def trust(clean_days: float, constants: PointsConstants) -> float:
    """trust_start on the first day, rising linearly to 1 after trust_ramp_days clean days."""
    if constants.trust_ramp_days <= 0.0:
        return 1.0
    progress = min(1.0, max(0.0, clean_days) / constants.trust_ramp_days)
    return constants.trust_start + (1.0 - constants.trust_start) * progress


def penalties(
    fake_verdicts: int, failed_checks: int, direct_points: float, constants: PointsConstants
) -> float:
    """Points subtracted for the day: per fake-model verdict, per failed check beyond the
    allowance, plus penalties recorded directly."""
    beyond_allowance = max(0, failed_checks - constants.failed_check_allowance)
    return (
        constants.fake_model_penalty * fake_verdicts
        + constants.failed_check_penalty * beyond_allowance
        + direct_points
    )


def earnings(uptime_: float, hardware_: float, model_value_: float, trust_: float) -> float:
    """The positive part of the score: uptime * (hardware + model value) * trust."""
    return uptime_ * (hardware_ + model_value_) * trust_


def operator_ranks(scores: Sequence[float]) -> list[int | None]:
    """Each score's rank among one operator's non-negative scores for a day (1 = best; ties go to
    the earlier score), in the order given; ``None`` for a negative score."""
    ranked = sorted(
        (index for index, score in enumerate(scores) if score >= 0.0),
        key=lambda index: (-scores[index], index),
    )
    ranks: list[int | None] = [None] * len(scores)
    for rank, index in enumerate(ranked, start=1):
        ranks[index] = rank
    return ranks


def operator_weights(scores: Sequence[float], decay: float) -> list[float]:
    """The weight of each of one operator's node scores for a day, in the order given.

    Non-negative scores, best first, weigh 1, decay, decay², …. Negative scores (penalties beyond
    earnings) weigh 1, so a large farm cannot dilute its penalties.
    """
    return [rank_weight(rank, decay) for rank in operator_ranks(scores)]


def rank_weight(rank: int | None, decay: float) -> float:
    """Weight of the score ranked ``rank`` (1 = best) among one operator's; 1 when unranked."""
    return 1.0 if rank is None else decay ** (rank - 1)


def in_demand(
    network_tokens: Mapping[ModelId, int], constants: PointsConstants
) -> frozenset[ModelId]:
    """The models in demand on a day, given the tokens the whole network served of each."""
    if constants.in_demand_models is not None:
        return constants.in_demand_models
    total = sum(network_tokens.values())
    return frozenset(
        model
        for model, tokens in network_tokens.items()
        if tokens > 0 and tokens >= constants.in_demand_min_share * total
    )
