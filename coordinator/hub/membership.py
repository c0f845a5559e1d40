"""Joining and leaving the network, the one way: websocket nodes and cloud relays alike.

A node that has been verified and admitted (its own business: a signed registration, or an
operator's stored cloud node) is *announced*: attached to the hub, held by the admission exam where
it must sit one, and made routable. When it goes it *departs*: whoever must still pay it learns
its payee, the hub and router forget it (unless a newer connection of the same node replaced it),
and its health window is saved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from coordinator.hub.live import LiveNode
from coordinator.hub.needs import HubNeeds
from coordinator.routing import NodeInfo
from coordinator.routing.health import HealthBucket
from coordinator.store.health import save_health

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admitted:
    """What the store says about a node it has just admitted."""

    payee_account_id: int
    first_seen: datetime
    model_switched_at: datetime | None
    health: list[HealthBucket]
    slots: int
    declared_tok_s: float | None
    examined: bool  # whether it sits the admission exam (cloud relays are vouched for)
    enrolled: bool = True


def announce(
    services: HubNeeds, node: LiveNode, admitted: Admitted, now: datetime
) -> LiveNode | None:
    """Make ``node`` live: returns the older connection of the same node it replaces, if any,
    which the caller ends (a websocket at once; a cloud relay once its answers are done)."""
    previous = services.hub.attach(node)
    if admitted.examined:  # held before it can be chosen
        services.admission.joined(node.node_id, node.register.models, enrolled=admitted.enrolled)
    services.router.upsert_node(
        NodeInfo(
            node_id=node.node_id, models=node.models, slots=admitted.slots,
            declared_tok_s=admitted.declared_tok_s, first_seen=admitted.first_seen.timestamp(),
            contexts=node.contexts,
        ),
        now=services.clock.monotonic(),
        wall_now=now.timestamp(),
        health=admitted.health,
    )
    return previous


async def depart(services: HubNeeds, node: LiveNode, reason: str) -> None:
    """Forget ``node``; a newer connection of the same node stays live."""
    services.departed_payees.remember(node.node_id, node.payee_account_id)
    services.hub.detach(node, reason)
    if services.hub.get(node.node_id) is not None:
        return
    services.router.remove_node(node.node_id)
    services.admission.left(node.node_id)
    if services.stopping.is_set():  # on shutdown the app saves every window itself
        return
    try:
        await save_health(
            services.database, services.router, [node.node_id],
            wall_now=services.clock.now().timestamp(),
        )
    except Exception:
        log.debug("health of %s not saved on leaving", node.node_id, exc_info=True)
