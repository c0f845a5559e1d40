"""Storing the points history (append only) and reading it back, with the facts about nodes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.contributions import (
    AuthenticityVerdict,
    Contribution,
    JobResult,
    Measurement,
    NodeFacts,
    OnlineTime,
    OperatorId,
    Penalty,
    ProbeResult,
)
from coordinator.store.models import Account, ContributionRow, Node
from protocol.ids import ModelId, NodeId


def to_row(record: Contribution, recorded_at: datetime) -> dict[str, Any]:
    """The columns of one contribution."""
    row: dict[str, Any] = {
        "kind": record.kind, "node_id": record.node_id, "at": record.at, "model": None,
        "flag": None, "count": 1, "tokens": 0, "amount": None, "reason": None,
        "recorded_at": recorded_at,
    }
    if isinstance(record, ProbeResult):
        row.update(model=record.model, flag=record.passed, count=record.count)
    elif isinstance(record, JobResult):
        row.update(model=record.model, flag=record.completed, count=record.count,
                   tokens=record.tokens)
    elif isinstance(record, Measurement):
        row.update(model=record.model, amount=record.tok_s)
    elif isinstance(record, OnlineTime):
        row.update(amount=record.seconds)
    elif isinstance(record, AuthenticityVerdict):
        row.update(model=record.model, flag=record.genuine)
    else:
        row.update(amount=record.points, reason=record.reason[:200])
    return row


def from_row(
    kind: str, node_id: str, at: float, model: str | None, flag: bool | None, count: int,
    tokens: int, amount: float | None, reason: str | None,
) -> Contribution:
    """The contribution stored in one row."""
    node, model_id = NodeId(node_id), ModelId(model or "")
    if kind == "probe":
        return ProbeResult(node_id=node, at=at, model=model_id, passed=bool(flag), count=count)
    if kind == "job":
        return JobResult(node_id=node, at=at, model=model_id, completed=bool(flag),
                         tokens=tokens, count=count)
    if kind == "measurement":
        return Measurement(node_id=node, at=at, model=model_id, tok_s=float(amount or 0.0))
    if kind == "online":
        return OnlineTime(node_id=node, at=at, seconds=float(amount or 0.0))
    if kind == "authenticity":
        return AuthenticityVerdict(node_id=node, at=at, model=model_id, genuine=bool(flag))
    if kind == "penalty":
        return Penalty(node_id=node, at=at, points=float(amount or 0.0), reason=reason or "")
    raise ValueError(f"unknown contribution kind {kind!r}")


async def append_contributions(
    session: AsyncSession, records: Sequence[Contribution], recorded_at: datetime
) -> None:
    """Append ``records`` in one statement; nothing here (or anywhere) updates or deletes."""
    if records:
        await session.execute(
            insert(ContributionRow), [to_row(record, recorded_at) for record in records]
        )


async def load_contributions(session: AsyncSession) -> list[Contribution]:
    """The whole stored history, in the order it was appended."""
    result = await session.execute(
        select(
            ContributionRow.kind, ContributionRow.node_id, ContributionRow.at,
            ContributionRow.model, ContributionRow.flag, ContributionRow.count,
            ContributionRow.tokens, ContributionRow.amount, ContributionRow.reason,
        ).order_by(ContributionRow.id)
    )
    return [from_row(*row) for row in result.all()]


async def load_contributions_after(
    session: AsyncSession, after: int = 0
) -> tuple[list[Contribution], int]:
    """What was appended after row ``after`` (everything from 0), in order, and the last row's
    number to ask from next time (``after`` when nothing was appended since)."""
    result = await session.execute(
        select(
            ContributionRow.id, ContributionRow.kind, ContributionRow.node_id, ContributionRow.at,
            ContributionRow.model, ContributionRow.flag, ContributionRow.count,
            ContributionRow.tokens, ContributionRow.amount, ContributionRow.reason,
        ).where(ContributionRow.id > after).order_by(ContributionRow.id)
    )
    rows = result.all()
    records = [
        from_row(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9])
        for row in rows
    ]
    return records, (rows[-1][0] if rows else after)


async def load_node_facts(
    session: AsyncSession, only: Collection[NodeId] | None = None
) -> dict[NodeId, NodeFacts]:
    """Every registered node's operator and first sighting.

    A node's points accrue to the wallet of the account that enrolled it (a local account's
    label when it has no wallet); a node nobody enrolled earns for its own key, which is itself
    a Solana address.
    """
    query = (
        select(Node.node_id, Node.first_seen, Node.models, Account.wallet, Account.label)
        .outerjoin(Account, Account.id == Node.operator_account_id)
    )
    if only is not None:
        query = query.where(Node.node_id.in_(list(only)))
    result = await session.execute(query)
    facts: dict[NodeId, NodeFacts] = {}
    for node_id, first_seen, models, wallet, label in result.all():
        facts[NodeId(node_id)] = NodeFacts(
            node_id=NodeId(node_id), operator=OperatorId(wallet or label or node_id),
            first_seen=first_seen.timestamp(), models=frozenset(ModelId(m) for m in models),
        )
    return facts
