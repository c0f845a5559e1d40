"""Saving and restoring nodes' health windows."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.routing import Router
from coordinator.routing.health import HealthBucket
from coordinator.store.database import Database
from coordinator.store.models import NodeHealthBucket
from protocol.ids import NodeId


async def save_buckets(
    session: AsyncSession, node_id: str, buckets: Iterable[HealthBucket]
) -> None:
    """Replace the node's stored window with ``buckets`` (the window in memory is newest)."""
    await session.execute(delete(NodeHealthBucket).where(NodeHealthBucket.node_id == node_id))
    session.add_all(
        NodeHealthBucket(
            node_id=node_id, bucket_start=b.start, successes=b.successes, failures=b.failures,
            neutrals=b.neutrals, probe_successes=b.probe_successes,
            probe_failures=b.probe_failures, online_s=b.online_s,
        )
        for b in buckets
    )


async def save_health(
    database: Database, router: Router, node_ids: Iterable[str], *, wall_now: float
) -> None:
    """Store the health windows the router holds for these nodes, in one transaction."""
    async with database.session() as session, session.begin():
        for node_id in node_ids:
            if node_id in router:
                await save_buckets(
                    session, node_id, router.health_buckets(NodeId(node_id), wall_now=wall_now)
                )


async def load_buckets(session: AsyncSession, node_id: str, since: int) -> list[HealthBucket]:
    rows = await session.scalars(
        select(NodeHealthBucket)
        .where(NodeHealthBucket.node_id == node_id, NodeHealthBucket.bucket_start >= since)
        .order_by(NodeHealthBucket.bucket_start)
    )
    return [
        HealthBucket(
            start=r.bucket_start, successes=r.successes, failures=r.failures,
            neutrals=r.neutrals, probe_successes=r.probe_successes,
            probe_failures=r.probe_failures, online_s=r.online_s,
        )
        for r in rows
    ]
