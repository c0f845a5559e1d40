"""Builders for points tests: one node's day of contributions, spelled as the terms it should
produce."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta

import pytest

from coordinator.points import (
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
)
from protocol.ids import ModelId, NodeId

DAY = date(2025, 3, 10)
MODEL = ModelId("gemma-3-270m")


def node_day(
    node: str,
    day: date = DAY,
    *,
    online: float = 1.0,
    passed: int = 1_440,
    failed: int = 0,
    jobs: int = 0,
    failed_jobs: int = 0,
    tokens: int | Mapping[ModelId, int] = 0,
    tok_s: float | tuple[float, ...] | None = None,
    fakes: int = 0,
    genuine: int = 0,
    penalty: float = 0.0,
) -> list[Contribution]:
    """Contributions for one node's UTC day: ``online`` is the fraction of the day reachable,
    ``tokens`` served of MODEL (or per model), ``tok_s`` one or several measurements."""
    node_id = NodeId(node)
    start = day_start(day)
    records: list[Contribution] = []
    if online > 0.0:
        records.append(OnlineTime(node_id=node_id, at=start, seconds=online * DAY_S))
    if passed:
        records.append(
            ProbeResult(node_id=node_id, at=start + 60, model=MODEL, passed=True, count=passed)
        )
    if failed:
        records.append(
            ProbeResult(node_id=node_id, at=start + 60, model=MODEL, passed=False, count=failed)
        )
    served = {MODEL: tokens} if isinstance(tokens, int) else dict(tokens)
    for index, (model, amount) in enumerate(sorted(served.items())):
        count = jobs if index == 0 else 0
        if count or amount:
            records.append(
                JobResult(
                    node_id=node_id,
                    at=start + 120,
                    model=model,
                    completed=True,
                    tokens=amount,
                    count=max(1, count),
                )
            )
    if failed_jobs:
        records.append(
            JobResult(
                node_id=node_id,
                at=start + 180,
                model=MODEL,
                completed=False,
                tokens=0,
                count=failed_jobs,
            )
        )
    speeds = () if tok_s is None else (tok_s,) if isinstance(tok_s, float | int) else tok_s
    for offset, speed in enumerate(speeds):
        records.append(
            Measurement(node_id=node_id, at=start + 240 + offset, model=MODEL, tok_s=speed)
        )
    for offset in range(fakes):
        records.append(
            AuthenticityVerdict(
                node_id=node_id, at=start + 300 + offset, model=MODEL, genuine=False
            )
        )
    for offset in range(genuine):
        records.append(
            AuthenticityVerdict(node_id=node_id, at=start + 400 + offset, model=MODEL, genuine=True)
        )
    if penalty:
        records.append(Penalty(node_id=node_id, at=start + 500, points=penalty, reason="test"))
    return records


def facts(
    node: str, operator: str = "wallet-a", *, age_days: int = 30, day: date = DAY
) -> NodeFacts:
    """A node first seen ``age_days`` before ``day`` (at noon, so the day is unambiguous)."""
    first_seen = day_start(day - timedelta(days=age_days)) + DAY_S / 2
    return NodeFacts(
        node_id=NodeId(node),
        operator=OperatorId(operator),
        first_seen=first_seen,
        models=frozenset({MODEL}),
    )


NodeDayBuilder = Callable[..., list[Contribution]]
FactsBuilder = Callable[..., NodeFacts]


@pytest.fixture(scope="session")
def make_day() -> NodeDayBuilder:
    return node_day


@pytest.fixture(scope="session")
def make_facts() -> FactsBuilder:
    return facts
