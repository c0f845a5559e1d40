"""Bodies of the public points API: what the handlers answer and what ``/openapi.json`` says.

The field names are the wire contract the points pages read; the queries describe the parameters
the handlers parse (``days`` is also bounded by ``settings.points.max_days``).
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator.points.board import LeaderboardRow, NodeBreakdown, ProviderBreakdown
from coordinator.points.day import NodeDayScore
from coordinator.points.estimate import EstimateTerms
from coordinator.points.standings import DayUsage


class PointsReply(BaseModel):
    model_config = ConfigDict(frozen=True)


class DaysQuery(BaseModel):
    """``?days=``: how many days back, today included."""

    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=30, ge=1, description="Days back, today included (at most the"
                      " coordinator's points.max_days, 90 by default).")


class EstimateQuery(BaseModel):
    """``?tok_s=&model=&uptime=&days_online=``: a node to price in points per day."""

    model_config = ConfigDict(extra="forbid")

    tok_s: float = Field(description="The node's sustained decode speed, tokens per second.")
    model: list[str] = Field(min_length=1, description="Catalogue models it serves (repeat).")
    uptime: float = Field(default=1.0, description="Share of the day online, 0 to 1.")
    days_online: float = Field(default=0.0, description="Days since the node first connected.")


class LeaderboardEntry(PointsReply):
    rank: int
    provider: str
    tier: str
    points: float
    tok_s: float | None
    nodes: int
    jobs: int
    tokens: int

    @classmethod
    def of(cls, row: LeaderboardRow) -> LeaderboardEntry:
        return cls(**dataclasses.asdict(row))


class Leaderboard(PointsReply):
    object: Literal["list"] = "list"
    days: int
    constants_version: str
    data: list[LeaderboardEntry]


class DayTerms(PointsReply):
    """Every term behind one node's score for one day."""

    online_s: float
    online_fraction: float
    probes_passed: int
    probes_failed: int
    jobs_completed: int
    jobs_failed: int
    pass_rate: float
    uptime: float
    measured_tok_s: float | None
    measured_today: bool
    hardware: float
    tokens: int
    models_served: list[str]
    extra_models: int
    model_value: float
    collapsed: bool
    clean_days: int
    trust: float
    fake_verdicts: int
    penalties: float
    penalty_reasons: list[str]
    removed: bool


class DayPoints(PointsReply):
    day: date
    score: float
    weighted_score: float
    terms: DayTerms

    @classmethod
    def of(cls, day: NodeDayScore) -> DayPoints:
        terms = {
            field.name: getattr(day.terms, field.name)
            for field in dataclasses.fields(day.terms)
            if field.name not in ("day", "node_id", "operator", "score")
        }
        return cls(day=day.terms.day, score=day.score, weighted_score=day.weighted_score,
                   terms=DayTerms.model_validate(terms))


class NodePoints(PointsReply):
    node_id: str
    points: float
    tokens: int
    jobs: int
    measured_tok_s: float | None
    removed: bool
    days: list[DayPoints]

    @classmethod
    def of(cls, node: NodeBreakdown) -> NodePoints:
        return cls(node_id=node.node_id, points=node.points, tokens=node.tokens, jobs=node.jobs,
                   measured_tok_s=node.measured_tok_s, removed=node.removed,
                   days=[DayPoints.of(day) for day in node.days])


class ProviderPoints(PointsReply):
    provider: str
    tier: str
    points: float
    hidden: bool
    nodes: list[NodePoints]

    @classmethod
    def of(cls, breakdown: ProviderBreakdown) -> ProviderPoints:
        return cls(provider=breakdown.provider, tier=breakdown.tier, points=breakdown.points,
                   hidden=breakdown.hidden, nodes=[NodePoints.of(n) for n in breakdown.nodes])


class PointsEstimate(PointsReply):
    uptime: float
    hardware: float
    tokens: float
    extra_models: int
    model_value: float
    trust: float
    points_per_day: float
    points: float = Field(description="The same as points_per_day.")

    @classmethod
    def of(cls, terms: EstimateTerms) -> PointsEstimate:
        return cls(**dataclasses.asdict(terms), points=terms.points_per_day)


class UsageDay(PointsReply):
    day: date
    tokens: int
    jobs: int


class NetworkUsage(PointsReply):
    object: Literal["list"] = "list"
    data: list[UsageDay]

    @classmethod
    def of(cls, usage: tuple[DayUsage, ...]) -> NetworkUsage:
        return cls(data=[UsageDay(day=u.day, tokens=u.tokens, jobs=u.jobs) for u in usage])
