"""Koretex Points: pure scoring of providers from an append-only history of contributions.

Per node per UTC day::

    score = uptime * (hardware + model_value) * trust - penalties

    uptime       online_fraction * pass_rate: the day's share spent reachable, times
                 (checks passed + jobs completed) / (checks + jobs attempted); unverified → 0
    hardware     √(measured tok/s): the median of the day's measurements, else the last known
    model_value  √(tokens served) * (1 + extra_model_bonus * extra in-demand models served),
                 * fake_model_collapse on a day with a fake-model verdict
    trust        trust_start → 1 linearly over trust_ramp_days clean days since first seen;
                 a fake-model verdict restarts it
    penalties    fake_model_penalty per fake verdict + failed_check_penalty per failed check
                 beyond failed_check_allowance + penalties recorded directly

Per operator (wallet), each day's node scores count 1, decay, decay², … best first. Points can be
recomputed from scratch under a new :class:`PointsConstants` whenever the methodology changes:
contributions are frozen records and nothing here has a clock, a database or randomness.
"""

from __future__ import annotations

from coordinator.contributions import (
    CONTRIBUTION_ADAPTER,
    DAY_S,
    AuthenticityVerdict,
    Contribution,
    JobResult,
    Measurement,
    NodeFacts,
    OnlineTime,
    OperatorId,
    Penalty,
    ProbeResult,
    day_start,
    utc_day,
)
from coordinator.points import terms
from coordinator.points.board import (
    LeaderboardRow,
    NodeBreakdown,
    ProviderBreakdown,
    leaderboard,
    provider_breakdown,
)
from coordinator.points.day import (
    DayResult,
    NodeDayScore,
    NodeTerms,
    clean_days,
    compute_day,
    compute_range,
    removal_day,
    removed_nodes,
)
from coordinator.points.estimate import EstimateTerms, estimate
from coordinator.points.history import History, NodeDay
from coordinator.settings.points_constants import DEFAULT_TIERS, PointsConstants, Tier

__all__ = [
    "CONTRIBUTION_ADAPTER",
    "DAY_S",
    "DEFAULT_TIERS",
    "AuthenticityVerdict",
    "Contribution",
    "DayResult",
    "EstimateTerms",
    "History",
    "JobResult",
    "LeaderboardRow",
    "Measurement",
    "NodeBreakdown",
    "NodeDay",
    "NodeDayScore",
    "NodeFacts",
    "NodeTerms",
    "OnlineTime",
    "OperatorId",
    "Penalty",
    "PointsConstants",
    "ProbeResult",
    "ProviderBreakdown",
    "Tier",
    "clean_days",
    "compute_day",
    "compute_range",
    "day_start",
    "estimate",
    "leaderboard",
    "provider_breakdown",
    "removal_day",
    "removed_nodes",
    "terms",
    "utc_day",
]
