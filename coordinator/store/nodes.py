"""Every node that ever registered: when it was first seen, what it runs, whom it earns for."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.store.models import Node
from protocol.messages import Register


async def record_registration(session: AsyncSession, register: Register, now: datetime) -> Node:
    """Insert or refresh the node's row; ``first_seen`` never moves once set."""
    node = await session.get(Node, register.node_id)
    models = sorted(str(offer.model) for offer in register.models)
    if node is None:
        node = Node(
            node_id=register.node_id, first_seen=now, last_seen=now, engine=register.engine,
            models=models, hardware=register.hardware.model_dump(),
        )
        session.add(node)
    else:
        if sorted(node.models) != models:
            node.model_switched_at = now  # starts the anti-flapping payout reduction
        node.last_seen = now
        node.engine = register.engine
        node.models = models
        node.hardware = register.hardware.model_dump()
    await session.flush()
    return node
