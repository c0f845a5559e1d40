"""The records points are folded from: an append-only history of contributions, plus node facts.

Every contribution is a frozen record of something the coordinator observed about one node at
one moment (``at``, epoch seconds, UTC). A contribution counts on the UTC day of its ``at``.

High-rate signals arrive pre-aggregated. The probe scheduler checks each connected node about once
a minute (~1,440 outcomes a day); the recorder folds those per-minute outcomes into per-hour
counters and appends one :class:`ProbeResult` per (node, model, outcome) and hour with ``count``
set, stamped with the start of the hour. Job outcomes are folded the same way into
:class:`JobResult` batches, and online time into :class:`OnlineTime` spans that the recorder cuts
at every UTC midnight. A day of one node is then a few dozen records rather than thousands, and
the fold stays exact: ``count`` identical outcomes weigh exactly as ``count`` single records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated, Literal, NewType

from pydantic import Field, TypeAdapter

from protocol.ids import ModelId, NodeId

OperatorId = NewType("OperatorId", str)
"""The operator (provider) a node belongs to: the Solana wallet address its points accrue to."""

DAY_S = 86_400.0
_EPOCH = date(1970, 1, 1)


def day_number(at: float) -> int:
    """Days since 1970-01-01 of the UTC day holding epoch second ``at``."""
    return int(at // DAY_S)


def utc_day(at: float) -> date:
    """The UTC calendar day holding epoch second ``at``."""
    return _EPOCH + timedelta(days=day_number(at))


def day_start(day: date) -> float:
    """Epoch second at which UTC ``day`` begins."""
    return (day - _EPOCH).days * DAY_S


def _check_at(at: float) -> None:
    if not math.isfinite(at):
        raise ValueError(f"at must be a finite epoch second, got {at!r}")


def _check_count(count: int) -> None:
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    """``count`` unannounced health checks of ``model`` on a node, all passed or all failed."""

    kind: Literal["probe"] = field(default="probe", init=False)
    node_id: NodeId
    at: float
    model: ModelId
    passed: bool
    count: int = 1

    def __post_init__(self) -> None:
        _check_at(self.at)
        _check_count(self.count)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """``count`` real jobs of ``model`` that ended alike on a node; ``tokens`` is how many tokens
    they actually delivered to callers in total (a failed job may have streamed some)."""

    kind: Literal["job"] = field(default="job", init=False)
    node_id: NodeId
    at: float
    model: ModelId
    completed: bool
    tokens: int
    count: int = 1

    def __post_init__(self) -> None:
        _check_at(self.at)
        _check_count(self.count)
        if self.tokens < 0:
            raise ValueError(f"tokens must not be negative, got {self.tokens}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """Sustained generation speed of ``model`` on a node, measured by the coordinator under load."""

    kind: Literal["measurement"] = field(default="measurement", init=False)
    node_id: NodeId
    at: float
    model: ModelId
    tok_s: float

    def __post_init__(self) -> None:
        _check_at(self.at)
        if not (math.isfinite(self.tok_s) and self.tok_s >= 0.0):
            raise ValueError(f"tok_s must be finite and non-negative, got {self.tok_s!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class OnlineTime:
    """``seconds`` a node was connected and reachable, in a span starting at ``at`` that does not
    cross a UTC midnight."""

    kind: Literal["online"] = field(default="online", init=False)
    node_id: NodeId
    at: float
    seconds: float

    def __post_init__(self) -> None:
        _check_at(self.at)
        if not (0.0 <= self.seconds <= DAY_S):
            raise ValueError(f"seconds must lie in [0, {DAY_S:.0f}], got {self.seconds!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticityVerdict:
    """An authenticity check of ``model`` on a node: ``genuine=False`` means the node was caught
    serving a different model than it claims."""

    kind: Literal["authenticity"] = field(default="authenticity", init=False)
    node_id: NodeId
    at: float
    model: ModelId
    genuine: bool

    def __post_init__(self) -> None:
        _check_at(self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Penalty:
    """Points subtracted from a node's day directly, with the reason shown to its operator."""

    kind: Literal["penalty"] = field(default="penalty", init=False)
    node_id: NodeId
    at: float
    points: float
    reason: str

    def __post_init__(self) -> None:
        _check_at(self.at)
        if not (math.isfinite(self.points) and self.points >= 0.0):
            raise ValueError(f"penalty points must be finite and non-negative, got {self.points!r}")


Contribution = ProbeResult | JobResult | Measurement | OnlineTime | AuthenticityVerdict | Penalty

CONTRIBUTION_ADAPTER: TypeAdapter[Contribution] = TypeAdapter(
    Annotated[Contribution, Field(discriminator="kind")]
)
"""Reads and writes contributions as JSON (``kind`` tags the record type), for storage."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFacts:
    """What the coordinator knows about a node apart from its contributions."""

    node_id: NodeId
    operator: OperatorId
    first_seen: float
    models: frozenset[ModelId] = frozenset()

    def __post_init__(self) -> None:
        _check_at(self.first_seen)
