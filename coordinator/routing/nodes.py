"""One node as the router sees it: what it declared, the state it is in, and where it ranks.

:class:`NodeInfo` is what a node declared on registering; :class:`RoutedNode` is the router's
mutable record of it (breaker, health, jobs in flight, its key in the candidate index); the
functions below read a record, without a clock of their own, to decide its capacity, its key
and its snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.routing.breaker import Breaker, BreakerState
from coordinator.routing.contexts import Offer, declared_offers
from coordinator.routing.health import HealthWindow
from coordinator.routing.index import RouteKey, route_key
from coordinator.routing.rules import passes_floor, spare_capacity
from protocol.ids import ModelId, NodeId


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node declared when it registered, plus when the network first saw it."""

    node_id: NodeId
    models: frozenset[ModelId]
    slots: int
    declared_tok_s: float | None
    first_seen: float
    """Wall-clock epoch seconds; ramp-up counts from here."""
    owner: str | None = None
    """The replica the node is connected to, when that is another replica; ``None`` here.

    A remote node's breaker, ramp-up and health are kept by its owner, which publishes the
    result (:meth:`Router.observe_remote`); this router only counts the jobs it sends there."""
    contexts: Mapping[ModelId, int] = field(default_factory=dict)
    """The context, in tokens, the node serves each model with. A model missing here has an
    unknown context: no request is kept from the node on its account (the node refuses what
    does not fit), and it is left out of :meth:`Router.largest_context`."""

    def context_for(self, model: ModelId) -> int | None:
        return self.contexts.get(model)


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """A read-only view of one node's routing state, for display and metrics."""

    node_id: NodeId
    models: frozenset[ModelId]
    live: bool
    draining: bool
    slots: int
    admitted_capacity: int
    """Slots granted by ramp-up; while half-open the breaker allows only one of them."""
    in_flight: int
    spare_capacity: float
    """Against the capacity in force now (ramp-up and breaker); 0.0 while parked."""
    breaker_state: BreakerState
    park_until: float | None
    """Monotonic seconds, on the clock passed in as ``now``."""
    health_score: float
    declared_tok_s: float | None
    measured_tok_s: float | None
    candidate: bool
    """Whether the node could be chosen for one of its models right now."""


class RoutedNode:
    """The router's record of one node, live or remembered after it left."""

    __slots__ = (
        "admitted",
        "breaker",
        "declared",
        "draining",
        "health",
        "health_score",
        "in_flight",
        "info",
        "key",
        "live",
        "measured_tok_s",
        "offers",
        "remote_capacity",
    )

    def __init__(self, info: NodeInfo, breaker: Breaker, health: HealthWindow) -> None:
        self.info = info
        self.breaker = breaker
        self.health = health
        self.health_score = 0.5
        self.live = True
        self.draining = False
        self.in_flight = 0
        self.measured_tok_s: float | None = None
        self.admitted = 1
        self.key: RouteKey | None = None
        """Its key in the candidate index of each of its models, or ``None`` when in none."""
        self.remote_capacity: int | None = None
        self.declared = declared_offers(info.models, info.contexts)
        self.offers: tuple[Offer, ...] = ()
        """The (model, context) entries it has in the router's context lists right now."""

    def declare(self, info: NodeInfo) -> None:
        """Take a re-registration's declaration in place of the one held."""
        self.info = info
        self.declared = declared_offers(info.models, info.contexts)


def capacity_now(node: RoutedNode, now: float) -> int:
    """The jobs the node may hold at once now: what its owner reported for a remote node,
    else its ramp-up's admitted slots capped by its breaker."""
    if node.remote_capacity is not None:
        return node.remote_capacity
    cap = node.breaker.slot_cap(now)
    return node.admitted if cap is None else min(node.admitted, cap)


def candidate_key(node: RoutedNode, now: float, floor_tok_s: float) -> RouteKey | None:
    """The node's key in the candidate index, or ``None`` when it could take no job now
    (gone, draining, under the speed floor or full)."""
    if not node.live or node.draining:
        return None
    if not passes_floor(node.info.declared_tok_s, node.measured_tok_s, floor_tok_s):
        return None
    capacity = capacity_now(node, now)
    if node.in_flight >= capacity:
        return None
    spare = spare_capacity(capacity, node.in_flight)
    return route_key(spare, node.health_score, node.info.node_id,
                     remote=node.remote_capacity is not None)


def snapshot_of(node: RoutedNode, now: float, floor_tok_s: float) -> NodeSnapshot:
    """The node's routing state now, as a read-only view."""
    capacity = capacity_now(node, now)
    return NodeSnapshot(
        node_id=node.info.node_id,
        models=node.info.models,
        live=node.live,
        draining=node.draining,
        slots=node.info.slots,
        admitted_capacity=node.admitted,
        in_flight=node.in_flight,
        spare_capacity=spare_capacity(capacity, node.in_flight) if capacity > 0 else 0.0,
        breaker_state=node.breaker.state(now),
        park_until=node.breaker.park_until,
        health_score=node.health_score,
        declared_tok_s=node.info.declared_tok_s,
        measured_tok_s=node.measured_tok_s,
        candidate=candidate_key(node, now, floor_tok_s) is not None,
    )
