"""Nodes removed from the network for serving another model than they claim, and the reads the
removal rules need (a node's recent fake verdicts, an operator's recent removals)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from coordinator.store.models import Base, ContributionRow, Node


class NodeRemoval(Base):
    """A node removed for good, with the operator it was enrolled to when it was removed."""

    __tablename__ = "node_removals"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id"), index=True
    )
    removed_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(String(200))


async def lock_node(session: AsyncSession, node_id: str) -> Node | None:
    """The node's row, locked until the transaction ends (verdicts on one node queue here)."""
    return (await session.execute(
        select(Node).where(Node.node_id == node_id).with_for_update()
    )).scalar_one_or_none()


async def fake_verdict_times(session: AsyncSession, node_id: str, since: float) -> list[float]:
    """When the node's stored fake-model verdicts since ``since`` were given, ascending."""
    result = await session.execute(
        select(ContributionRow.at).where(
            ContributionRow.node_id == node_id, ContributionRow.kind == "authenticity",
            ContributionRow.flag.is_(False), ContributionRow.at >= since,
        ).order_by(ContributionRow.at)
    )
    return [float(at) for at in result.scalars()]


async def removal_reason(session: AsyncSession, node_id: str) -> str | None:
    """Why the node was removed, if it was."""
    found: str | None = await session.scalar(
        select(NodeRemoval.reason).where(NodeRemoval.node_id == node_id)
    )
    return found


async def record_removal(
    session: AsyncSession, node: Node, removed_at: datetime, reason: str
) -> None:
    if await removal_reason(session, node.node_id) is None:
        session.add(NodeRemoval(
            node_id=node.node_id, operator_account_id=node.operator_account_id,
            removed_at=removed_at, reason=reason[:200],
        ))
        await session.flush()


async def operator_removed_since(session: AsyncSession, account_id: int, since: datetime) -> bool:
    """Whether a node enrolled to the account was removed at or after ``since``."""
    found = await session.scalar(
        select(NodeRemoval.node_id).where(
            NodeRemoval.operator_account_id == account_id, NodeRemoval.removed_at >= since
        ).limit(1)
    )
    return found is not None
