"""Saving and restoring nodes' health windows."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.routing.health import HealthBucket
from coordinator.store.models import NodeHealthBucket


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
