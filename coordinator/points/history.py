"""The append-only history of contributions, grouped once per node per UTC day.

Grouping is a single pass over the contributions (already ordered by time), so folding a day of
10,000 nodes costs one visit per record; every later question — a node's day, its last known
speed, its unclean days, its fake-model verdicts — is a dictionary lookup or a bisection.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from heapq import merge
from operator import attrgetter
from types import MappingProxyType

from coordinator.contributions import DAY_S, Contribution
from protocol.ids import ModelId, NodeId

_EPOCH = date(1970, 1, 1)
_EMPTY: Mapping[NodeId, NodeDay] = MappingProxyType({})
_AT = attrgetter("at")


def to_day_number(day: date) -> int:
    """Days since 1970-01-01 of ``day``."""
    return (day - _EPOCH).days


def from_day_number(number: int) -> date:
    """The calendar day ``number`` days after 1970-01-01."""
    return _EPOCH + timedelta(days=number)


@dataclass(frozen=True, slots=True)
class NodeDay:
    """One node's contributions on one UTC day, folded into counters."""

    node_id: NodeId
    day: date
    probes_passed: int
    probes_failed: int
    jobs_completed: int
    jobs_failed: int
    tokens_by_model: tuple[tuple[ModelId, int], ...]
    online_s: float
    tok_s_samples: tuple[float, ...]
    fake_verdicts: tuple[ModelId, ...]
    genuine_verdicts: int
    penalty_points: float
    penalty_reasons: tuple[str, ...]

    @property
    def tokens(self) -> int:
        """Tokens the node served that day, over all models."""
        return sum(tokens for _, tokens in self.tokens_by_model)


class _Tally:
    """A node-day being folded; frozen into a :class:`NodeDay` once the pass is done."""

    __slots__ = (
        "fakes",
        "genuine",
        "jobs_completed",
        "jobs_failed",
        "online_s",
        "penalty_points",
        "penalty_reasons",
        "probes_failed",
        "probes_passed",
        "tok_s",
        "tokens",
    )

    def __init__(self) -> None:
        self.probes_passed = 0
        self.probes_failed = 0
        self.jobs_completed = 0
        self.jobs_failed = 0
        self.tokens: dict[ModelId, int] = {}
        self.online_s = 0.0
        self.tok_s: list[float] = []
        self.fakes: list[ModelId] = []
        self.genuine = 0
        self.penalty_points = 0.0
        self.penalty_reasons: list[str] = []

    def freeze(self, node_id: NodeId, day: date) -> NodeDay:
        return NodeDay(
            node_id=node_id,
            day=day,
            probes_passed=self.probes_passed,
            probes_failed=self.probes_failed,
            jobs_completed=self.jobs_completed,
            jobs_failed=self.jobs_failed,
            tokens_by_model=tuple(sorted(self.tokens.items())),
            online_s=self.online_s,
            tok_s_samples=tuple(self.tok_s),
            fake_verdicts=tuple(self.fakes),
            genuine_verdicts=self.genuine,
            penalty_points=self.penalty_points,
            penalty_reasons=tuple(self.penalty_reasons),
        )


class History:
    """An immutable, time-ordered tuple of contributions with its per-node, per-day grouping.

    Contributions are ordered by ``at``; ties keep the order they were given in. Two histories
    are equal when their contributions are.
    """

    __slots__ = ("_by_day", "_contributions", "_fake_times", "_measured", "_suspect_days")

    def __init__(self, contributions: Iterable[Contribution] = ()) -> None:
        self._contributions: tuple[Contribution, ...] = tuple(sorted(contributions, key=_AT))
        self._by_day: dict[int, Mapping[NodeId, NodeDay]] = {}
        # Per node, ascending: days with a measurement and that day's median speed; days with
        # anything that may make a day unclean; times of fake-model verdicts.
        self._measured: dict[NodeId, tuple[list[int], list[float]]] = {}
        self._suspect_days: dict[NodeId, list[int]] = {}
        self._fake_times: dict[NodeId, list[float]] = {}
        self._group()

    @staticmethod
    def _on_base(contributions: tuple[Contribution, ...], base: History, first: int) -> History:
        """A history of ``contributions`` that shares ``base``'s folded days before ``first``
        (the rest is for :meth:`_group` to fold)."""
        history = object.__new__(History)
        history._contributions = contributions
        history._by_day = {number: days for number, days in base._by_day.items() if number < first}
        history._measured = dict(base._measured)
        history._suspect_days = dict(base._suspect_days)
        history._fake_times = dict(base._fake_times)
        return history

    def _group(self, start: int = 0, first: int | None = None) -> None:
        """Fold ``_contributions[start:]`` into the per-day groups; with ``first`` (the day
        number they start on), the per-node lists copied from a base are cut there first."""
        days: dict[int, dict[NodeId, _Tally]] = {}
        current: dict[NodeId, _Tally] = {}
        day_begin = day_end = 0.0
        fake_times: dict[NodeId, list[float]] = {}
        for index in range(start, len(self._contributions)):
            record = self._contributions[index]
            at = record.at
            if not day_begin <= at < day_end:
                number = int(at // DAY_S)
                day_begin = number * DAY_S
                day_end = day_begin + DAY_S
                current = days.setdefault(number, {})
            tally = current.get(record.node_id)
            if tally is None:
                tally = current[record.node_id] = _Tally()
            # Ordered by frequency: probes and jobs are most of any day.
            if record.kind == "probe":
                if record.passed:
                    tally.probes_passed += record.count
                else:
                    tally.probes_failed += record.count
            elif record.kind == "job":
                if record.completed:
                    tally.jobs_completed += record.count
                else:
                    tally.jobs_failed += record.count
                if record.tokens:
                    tally.tokens[record.model] = tally.tokens.get(record.model, 0) + record.tokens
            elif record.kind == "online":
                tally.online_s += float(record.seconds)
            elif record.kind == "measurement":
                tally.tok_s.append(float(record.tok_s))
            elif record.kind == "authenticity":
                if record.genuine:
                    tally.genuine += 1
                else:
                    tally.fakes.append(record.model)
                    fake_times.setdefault(record.node_id, []).append(at)
            else:
                tally.penalty_points += float(record.points)
                tally.penalty_reasons.append(record.reason)
        if first is not None:
            # Per-node lists shared with the base history: every node with anything from day
            # ``first`` on has contributions in the regrouped part, so only those are cut (copies).
            touched = {node for tallies in days.values() for node in tallies}
            self._cut_at(first, touched)
        for node_id, times in fake_times.items():
            self._fake_times.setdefault(node_id, []).extend(times)
        measured, suspect = self._measured, self._suspect_days
        for number in sorted(days):
            day = from_day_number(number)
            frozen: dict[NodeId, NodeDay] = {}
            for node_id, tally in days[number].items():
                frozen[node_id] = node_day = tally.freeze(node_id, day)
                if node_day.tok_s_samples:
                    measured_days, medians = measured.setdefault(node_id, ([], []))
                    measured_days.append(number)
                    medians.append(statistics.median(node_day.tok_s_samples))
                if node_day.probes_failed or node_day.fake_verdicts or node_day.penalty_reasons:
                    suspect.setdefault(node_id, []).append(number)
            self._by_day[number] = MappingProxyType(frozen)

    def _cut_at(self, first: int, nodes: Iterable[NodeId]) -> None:
        for node_id in nodes:
            measured = self._measured.get(node_id)
            if measured is not None:
                keep = bisect_left(measured[0], first)
                self._measured[node_id] = (measured[0][:keep], measured[1][:keep])
            suspect = self._suspect_days.get(node_id)
            if suspect is not None:
                self._suspect_days[node_id] = suspect[: bisect_left(suspect, first)]
            fakes = self._fake_times.get(node_id)
            if fakes is not None:
                self._fake_times[node_id] = fakes[: bisect_left(fakes, first * DAY_S)]
        for table in (self._measured, self._suspect_days, self._fake_times):
            for node_id in [node for node, values in table.items() if not values]:
                del table[node_id]

    @property
    def contributions(self) -> tuple[Contribution, ...]:
        """Every contribution, ordered by time."""
        return self._contributions

    def extended(self, more: Iterable[Contribution]) -> History:
        """A new history holding these contributions and ``more``; this one is unchanged.

        Only the days from ``more``'s earliest on are folded again, so adding today's records to
        a long history costs a pass over today, not over the whole history.
        """
        added = sorted(more, key=_AT)
        if not added:
            return self
        first = int(added[0].at // DAY_S)
        start = bisect_left(self._contributions, first * DAY_S, key=_AT)
        # Stable on ties, as sorting the concatenation would be: ours before the added ones.
        tail = tuple(merge(self._contributions[start:], added, key=_AT))
        history = History._on_base(self._contributions[:start] + tail, self, first)
        history._group(start, first)
        return history

    @property
    def days(self) -> tuple[date, ...]:
        """The UTC days that hold at least one contribution, ascending."""
        return tuple(from_day_number(number) for number in self._by_day)

    def node_days(self, day: date) -> Mapping[NodeId, NodeDay]:
        """Every node with contributions on ``day``, with that day folded."""
        return self._by_day.get(to_day_number(day), _EMPTY)

    def measured_tok_s(self, node_id: NodeId, day: date) -> tuple[float | None, bool]:
        """The node's measured speed for ``day``: the median of that day's measurements, else
        the last day's before it; and whether it was measured on ``day`` itself."""
        return self.measured_on(node_id, to_day_number(day))

    def fake_verdict_times(self, node_id: NodeId) -> tuple[float, ...]:
        """When the node was caught serving a different model than it claims, ascending."""
        return tuple(self._fake_times.get(node_id, ()))

    def caught_nodes(self) -> tuple[NodeId, ...]:
        """Nodes with at least one fake-model verdict, in the order they were first caught."""
        return tuple(self._fake_times)

    # Day-number forms, without copies, for the scoring fold (:mod:`coordinator.points.day`).

    def node_days_on(self, number: int) -> Mapping[NodeId, NodeDay]:
        """:meth:`node_days` of day ``number`` (days since 1970-01-01)."""
        return self._by_day.get(number, _EMPTY)

    def fake_times_of(self, node_id: NodeId) -> Sequence[float]:
        """:meth:`fake_verdict_times`, as a read-only view (do not change it)."""
        return self._fake_times.get(node_id, ())

    def measured_on(self, node_id: NodeId, number: int) -> tuple[float | None, bool]:
        """:meth:`measured_tok_s` of day ``number``."""
        measured = self._measured.get(node_id)
        if measured is None:
            return None, False
        measured_days, medians = measured
        index = bisect_right(measured_days, number) - 1
        if index < 0:
            return None, False
        return medians[index], measured_days[index] == number

    def suspect_days_between(self, node_id: NodeId, first: int, end: int) -> list[int]:
        """Days in ``[first, end)`` on which the node failed a check, was penalised or faked."""
        suspect = self._suspect_days.get(node_id)
        if not suspect:
            return []
        return suspect[bisect_left(suspect, first) : bisect_left(suspect, end)]

    def __len__(self) -> int:
        return len(self._contributions)

    def __iter__(self) -> Iterator[Contribution]:
        return iter(self._contributions)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return self._contributions == other._contributions

    def __hash__(self) -> int:
        return hash(self._contributions)

    def __repr__(self) -> str:
        return f"History({len(self._contributions)} contributions, {len(self._by_day)} days)"
