"""Folding high-rate observations into the hourly records the history keeps (pure).

:class:`ContributionBatcher` takes single contributions as they happen and hands back, once an
hour is over, one record per (node, model, outcome) and hour with ``count`` set, stamped with the
start of the hour: probe outcomes as :class:`ProbeResult`, job outcomes as :class:`JobResult`
(tokens summed), speed samples as one :class:`Measurement` (their median), online time as one
:class:`OnlineTime` per node and hour (an hour never crosses a UTC midnight). Authenticity
verdicts and penalties are rare and pass through as they are. The fold is exact: the history
scores the batches as it would have scored every single record.

:class:`OnlineTracker` turns "these nodes are connected now" into spans of time online, credited
from the last reading (or the connection) to now, and cut at every hour.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from coordinator.contributions import (
    Contribution,
    JobResult,
    Measurement,
    OnlineTime,
    ProbeResult,
)
from protocol.ids import ModelId, NodeId

HOUR_S = 3600.0


def hour_of(at: float) -> float:
    """The start of the UTC hour holding epoch second ``at``."""
    return math.floor(at / HOUR_S) * HOUR_S


def hour_spans(start: float, end: float) -> list[tuple[float, float]]:
    """``[start, end)`` cut at every hour boundary, as (start, seconds) pieces."""
    pieces: list[tuple[float, float]] = []
    cursor = start
    while cursor < end:
        boundary = min(end, hour_of(cursor) + HOUR_S)
        pieces.append((cursor, boundary - cursor))
        cursor = boundary
    return pieces


@dataclass
class _JobTally:
    count: int = 0
    tokens: int = 0


@dataclass
class ContributionBatcher:
    """Contributions waiting for their hour to end, folded into counters."""

    _probes: dict[tuple[float, NodeId, ModelId, bool], int] = field(default_factory=dict)
    _jobs: dict[tuple[float, NodeId, ModelId, bool], _JobTally] = field(default_factory=dict)
    _speeds: dict[tuple[float, NodeId, ModelId], list[float]] = field(default_factory=dict)
    _online: dict[tuple[float, NodeId], float] = field(default_factory=dict)
    _single: list[Contribution] = field(default_factory=list)

    def add(self, record: Contribution) -> None:
        """Fold one contribution in (a batch of ``count`` counts ``count`` times)."""
        if isinstance(record, ProbeResult):
            key = (hour_of(record.at), record.node_id, record.model, record.passed)
            self._probes[key] = self._probes.get(key, 0) + record.count
        elif isinstance(record, JobResult):
            job_key = (hour_of(record.at), record.node_id, record.model, record.completed)
            tally = self._jobs.setdefault(job_key, _JobTally())
            tally.count += record.count
            tally.tokens += record.tokens
        elif isinstance(record, Measurement):
            speed_key = (hour_of(record.at), record.node_id, record.model)
            self._speeds.setdefault(speed_key, []).append(record.tok_s)
        elif isinstance(record, OnlineTime):
            for start, seconds in hour_spans(record.at, record.at + record.seconds):
                online_key = (hour_of(start), record.node_id)
                self._online[online_key] = self._online.get(online_key, 0.0) + seconds
        else:
            self._single.append(record)

    def extend(self, records: Iterable[Contribution]) -> None:
        for record in records:
            self.add(record)

    def take(self, now: float | None) -> list[Contribution]:
        """Every batch of an hour that ended by ``now`` (all of them when ``now`` is None), and
        the single records; they leave the batcher."""
        cutoff = math.inf if now is None else hour_of(now)
        records = self._records(cutoff, remove=True)
        records.extend(self._single)
        self._single = []
        return records

    def preview(self) -> list[Contribution]:
        """What :meth:`take` would return for everything, leaving the batcher as it is."""
        return [*self._records(math.inf, remove=False), *self._single]

    def __len__(self) -> int:
        return (
            len(self._probes) + len(self._jobs) + len(self._speeds) + len(self._online)
            + len(self._single)
        )

    def _records(self, cutoff: float, *, remove: bool) -> list[Contribution]:
        records: list[Contribution] = []
        for key, count in _closed(self._probes, cutoff, remove):
            hour, node_id, model, passed = key
            records.append(
                ProbeResult(node_id=node_id, at=hour, model=model, passed=passed, count=count)
            )
        for job_key, tally in _closed(self._jobs, cutoff, remove):
            hour, node_id, model, completed = job_key
            records.append(JobResult(node_id=node_id, at=hour, model=model, completed=completed,
                                     tokens=tally.tokens, count=tally.count))
        for speed_key, samples in _closed(self._speeds, cutoff, remove):
            hour, node_id, model = speed_key
            records.append(Measurement(node_id=node_id, at=hour, model=model,
                                       tok_s=statistics.median(samples)))
        for online_key, seconds in _closed(self._online, cutoff, remove):
            hour, node_id = online_key
            records.append(OnlineTime(node_id=node_id, at=hour, seconds=min(seconds, HOUR_S)))
        return records


K = TypeVar("K", bound=tuple[Any, ...])
V = TypeVar("V")


def _closed(batches: dict[K, V], cutoff: float, remove: bool) -> list[tuple[K, V]]:
    closed = [(key, value) for key, value in batches.items() if key[0] < cutoff]
    if remove:
        for key, _ in closed:
            del batches[key]
    return closed


class OnlineTracker:
    """Time online per node, credited in spans from the last reading to now."""

    def __init__(self) -> None:
        self._credited: dict[NodeId, float] = {}

    def tick(self, connected: Mapping[NodeId, float], wall_now: float) -> list[OnlineTime]:
        """Spans online since the last tick for the nodes ``connected`` now (node → when its
        connection opened, epoch seconds), cut at every hour; nodes gone are forgotten."""
        spans: list[OnlineTime] = []
        for node_id, since in connected.items():
            start = max(since, self._credited.get(node_id, since))
            for at, seconds in hour_spans(start, wall_now):
                spans.append(OnlineTime(node_id=node_id, at=at, seconds=seconds))
            self._credited[node_id] = max(start, wall_now)
        for gone in [node for node in self._credited if node not in connected]:
            del self._credited[gone]
        return spans


__all__ = [
    "HOUR_S",
    "ContributionBatcher",
    "OnlineTracker",
    "hour_of",
    "hour_spans",
]
