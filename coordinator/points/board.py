"""The leaderboard and a provider's breakdown, folded from days already scored.

Decisions:

* A provider's points over a range are the sum of its operator-weighted day scores, floored at
  zero: penalties can wipe out earnings but never leave a provider owing points.
* Rank is by points alone, then provider id for equal points; ranks run 1, 2, 3, … with no
  shared places, so the order is total and stable.
* Tok/s is the provider's best node: each node's median daily measured speed over the range,
  then the fastest node. A provider's size shows in Nodes, not in Tok/s.
* Providers with a removed node in the range are hidden, as are any the caller names (e.g. from
  :func:`coordinator.points.removed_nodes` over the whole history).
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from coordinator.contributions import OperatorId
from coordinator.points.day import DayResult, NodeDayScore
from coordinator.settings.points_constants import PointsConstants
from protocol.ids import NodeId


@dataclass(frozen=True, slots=True)
class LeaderboardRow:
    """One provider's line on the board."""

    rank: int
    provider: OperatorId
    tier: str
    points: float
    tok_s: float | None
    nodes: int
    jobs: int
    tokens: int


@dataclass(frozen=True, slots=True)
class NodeBreakdown:
    """One node's days in the range, with every term of each, and its totals."""

    node_id: NodeId
    days: tuple[NodeDayScore, ...]
    points: float
    tokens: int
    jobs: int
    measured_tok_s: float | None
    removed: bool


@dataclass(frozen=True, slots=True)
class ProviderBreakdown:
    """A provider's standing over the range and each of its nodes' contributions to it."""

    provider: OperatorId
    tier: str
    points: float
    hidden: bool
    nodes: tuple[NodeBreakdown, ...]


def _check_version(results: Sequence[DayResult], constants: PointsConstants) -> None:
    versions = {result.constants_version for result in results}
    if versions - {constants.version}:
        raise ValueError(
            f"days scored under constants {sorted(versions)} cannot be ranked under "
            f"{constants.version!r}: recompute them first"
        )


def _typical_tok_s(days: Iterable[NodeDayScore]) -> float | None:
    speeds = [day.terms.measured_tok_s for day in days if day.terms.measured_tok_s is not None]
    return statistics.median(speeds) if speeds else None


def _by_node(days: Iterable[NodeDayScore]) -> dict[NodeId, list[NodeDayScore]]:
    grouped: dict[NodeId, list[NodeDayScore]] = {}
    for day in days:
        grouped.setdefault(day.node_id, []).append(day)
    return grouped


def leaderboard(
    results: Iterable[DayResult],
    constants: PointsConstants,
    *,
    hidden: Collection[OperatorId] = frozenset(),
) -> tuple[LeaderboardRow, ...]:
    """Every visible provider over the days in ``results``, best first."""
    days = tuple(results)
    _check_version(days, constants)
    by_provider: dict[OperatorId, list[NodeDayScore]] = {}
    for result in days:
        for node in result.nodes:
            by_provider.setdefault(node.operator, []).append(node)

    unranked: list[LeaderboardRow] = []
    for provider, node_days in by_provider.items():
        if provider in hidden or any(day.terms.removed for day in node_days):
            continue
        points = max(0.0, sum(day.weighted_score for day in node_days))
        speeds = [
            speed
            for speed in map(_typical_tok_s, _by_node(node_days).values())
            if speed is not None
        ]
        unranked.append(
            LeaderboardRow(
                rank=0,
                provider=provider,
                tier=constants.tier_for(points),
                points=points,
                tok_s=max(speeds) if speeds else None,
                nodes=len({day.node_id for day in node_days}),
                jobs=sum(day.terms.jobs_completed for day in node_days),
                tokens=sum(day.terms.tokens for day in node_days),
            )
        )
    unranked.sort(key=lambda row: (-row.points, row.provider))
    return tuple(replace(row, rank=rank) for rank, row in enumerate(unranked, start=1))


def provider_breakdown(
    results: Iterable[DayResult], provider: OperatorId, constants: PointsConstants
) -> ProviderBreakdown:
    """``provider``'s nodes over the days in ``results``, every term of every day included."""
    days = tuple(results)
    _check_version(days, constants)
    own = [node for result in days for node in result.nodes if node.operator == provider]
    nodes = tuple(
        NodeBreakdown(
            node_id=node_id,
            days=tuple(node_days),
            points=sum(day.weighted_score for day in node_days),
            tokens=sum(day.terms.tokens for day in node_days),
            jobs=sum(day.terms.jobs_completed for day in node_days),
            measured_tok_s=_typical_tok_s(node_days),
            removed=any(day.terms.removed for day in node_days),
        )
        for node_id, node_days in sorted(_by_node(own).items())
    )
    points = max(0.0, sum(node.points for node in nodes))
    return ProviderBreakdown(
        provider=provider,
        tier=constants.tier_for(points),
        points=points,
        hidden=any(node.removed for node in nodes),
        nodes=nodes,
    )
