"""The network's standings: every day of the board's range scored from the whole history (pure).

The keeper calls :func:`score_history` from scratch on each recompute, so a restart, or a new
version of the constants, gives exactly the standings the stored history implies. Between two,
:func:`rescored` scores again only the days that received contributions since (today, in
practice), so what a page shows is current without folding the whole history per page load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from coordinator.contributions import NodeFacts, OperatorId, day_start
from coordinator.points.board import (
    LeaderboardRow,
    ProviderBreakdown,
    leaderboard,
    provider_breakdown,
)
from coordinator.points.day import DayResult, compute_range, removed_nodes
from coordinator.points.history import History
from coordinator.settings.points_constants import PointsConstants
from protocol.ids import NodeId


@dataclass(frozen=True, slots=True)
class DayUsage:
    """What the whole network served on one UTC day."""

    day: date
    tokens: int
    jobs: int


@dataclass(frozen=True, slots=True)
class Standings:
    """Scored days (oldest first, consecutive, ending ``today``) and who is removed or hidden."""

    today: date
    constants: PointsConstants
    days: tuple[DayResult, ...] = ()
    usage: tuple[DayUsage, ...] = ()
    facts: Mapping[NodeId, NodeFacts] = field(default_factory=dict)
    removed: Mapping[NodeId, date] = field(default_factory=dict)
    hidden: frozenset[OperatorId] = frozenset()

    def window(self, days: int) -> tuple[DayResult, ...]:
        """The last ``days`` scored days (fewer if the history is younger)."""
        first = self.today - timedelta(days=days - 1)
        return tuple(result for result in self.days if result.day >= first)

    def board(self, days: int) -> tuple[LeaderboardRow, ...]:
        """The leaderboard over the last ``days`` days; removed operators are left off."""
        return leaderboard(self.window(days), self.constants, hidden=self.hidden)

    def knows(self, operator: OperatorId) -> bool:
        """Whether any node ever registered for ``operator``."""
        return any(facts.operator == operator for facts in self.facts.values())

    def provider(self, operator: OperatorId, days: int) -> ProviderBreakdown:
        """One operator's breakdown over the last ``days`` days."""
        breakdown = provider_breakdown(self.window(days), operator, self.constants)
        if operator in self.hidden and not breakdown.hidden:
            return ProviderBreakdown(
                breakdown.provider, breakdown.tier, breakdown.points, True, breakdown.nodes
            )
        return breakdown

    def usage_window(self, days: int) -> tuple[DayUsage, ...]:
        """Tokens and jobs served on each of the last ``days`` days, zeros included."""
        served = {entry.day: entry for entry in self.usage}
        first = self.today - timedelta(days=days - 1)
        return tuple(
            served.get(day, DayUsage(day, 0, 0))
            for day in (first + timedelta(days=offset) for offset in range(days))
        )


def _facts_for(history: History, facts: Mapping[NodeId, NodeFacts]) -> dict[NodeId, NodeFacts]:
    """``facts``, plus stand-ins for nodes with contributions but no row (never in practice)."""
    complete = dict(facts)
    for record in history:
        if record.node_id not in complete:
            complete[record.node_id] = NodeFacts(
                node_id=record.node_id, operator=OperatorId(record.node_id), first_seen=record.at
            )
    return complete


def score_history(
    history: History,
    facts: Mapping[NodeId, NodeFacts],
    today: date,
    constants: PointsConstants,
    max_days: int,
) -> Standings:
    """Every day from the history's first (at most ``max_days`` back) to ``today``, scored."""
    complete = _facts_for(history, facts)
    removed = removed_nodes(history, constants, today)
    hidden = frozenset(complete[node_id].operator for node_id in removed if node_id in complete)
    history_days = [day for day in history.days if day <= today]
    if not history_days:
        return Standings(today, constants, facts=complete, removed=removed, hidden=hidden)
    first = max(history_days[0], today - timedelta(days=max_days - 1))
    results = compute_range(history, complete, first, today, constants)
    usage = tuple(
        _day_usage(history, day)
        for day in history_days
        if day >= today - timedelta(days=max_days - 1)
    )
    return Standings(today, constants, results, usage, complete, removed, hidden)


def rescored(
    previous: Standings,
    history: History,
    facts: Mapping[NodeId, NodeFacts],
    first: date,
    today: date,
    max_days: int,
) -> Standings:
    """``previous`` with every day from ``first`` to ``today`` scored again from ``history``
    (which holds everything, old and new): the days before ``first`` are kept as scored.

    ``first`` is the earliest day with contributions ``previous`` did not see; the result is what
    :func:`score_history` would give over the same history and facts.
    """
    constants = previous.constants
    window_start = today - timedelta(days=max_days - 1)
    first = min(first, previous.today + timedelta(days=1), today)
    if not previous.days or first <= previous.days[0].day:
        return score_history(history, facts, today, constants, max_days)
    first = max(first, window_start)
    complete = dict(previous.facts)
    complete.update(facts)
    for offset in range((today - first).days + 1):
        for node_id in history.node_days(first + timedelta(days=offset)):
            if node_id not in complete:  # a stand-in, as in score_history (never in practice)
                complete[node_id] = NodeFacts(
                    node_id=node_id, operator=OperatorId(node_id),
                    first_seen=day_start(first + timedelta(days=offset)),
                )
    removed = removed_nodes(history, constants, today)
    hidden = frozenset(complete[node_id].operator for node_id in removed if node_id in complete)
    kept = tuple(result for result in previous.days if window_start <= result.day < first)
    results = kept + compute_range(history, complete, first, today, constants)
    usage = tuple(entry for entry in previous.usage if window_start <= entry.day < first) + tuple(
        _day_usage(history, day) for day in history.days if first <= day <= today
    )
    return Standings(today, constants, results, usage, complete, removed, hidden)


def _day_usage(history: History, day: date) -> DayUsage:
    node_days = history.node_days(day).values()
    return DayUsage(
        day,
        sum(node_day.tokens for node_day in node_days),
        sum(node_day.jobs_completed for node_day in node_days),
    )
