"""The routing table: which live node should take the next job for a model.

:class:`Router` keeps, per model, an index of exactly the nodes that could take a job now, and
updates it as jobs start and finish, so :meth:`Router.choose` costs O(log n) rather than a scan.
It never reads a clock and owns no randomness: ``now`` is monotonic seconds (breaker),
``wall_now`` epoch seconds (health window, ramp-up), and ``rng`` is passed to each pick.

It also keeps, per model, the contexts live nodes serve it with, sorted: a pick that needs a
context of at least ``min_context`` tokens passes over the (few) smaller ones by bisection, and
the largest context on offer is read from the end.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from coordinator.routing.breaker import Breaker, BreakerState
from coordinator.routing.constants import RoutingConstants
from coordinator.routing.health import HealthBucket, HealthWindow
from coordinator.routing.index import CandidateIndex, RouteKey, route_key
from coordinator.routing.outcome import Outcome
from coordinator.routing.rules import admitted_capacity, passes_floor, ramp_fraction, spare_capacity
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


UNKNOWN_CONTEXT = 2**62
"""Where a node of unknown context sorts among the contexts: past every real one, so no
``min_context`` passes it over."""

_Offer = tuple[ModelId, int]


def _declared_offers(info: NodeInfo) -> tuple[_Offer, ...]:
    return tuple(
        (model, info.contexts.get(model, UNKNOWN_CONTEXT)) for model in sorted(info.models)
    )


class _Node:
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
        self.remote_capacity: int | None = None
        self.declared = _declared_offers(info)
        self.offers: tuple[_Offer, ...] = ()
        """The (model, context) entries it has in the router's context lists right now."""


class Router:
    """Least-loaded routing over live nodes, with breaker, speed floor and ramp-up applied.

    A removed node is remembered (breaker, health, measurement, in-flight count) until
    :meth:`forget_node`, so reconnecting does not clear a parked breaker.
    Unknown node ids raise :class:`KeyError`.
    """

    def __init__(self, constants: RoutingConstants | None = None) -> None:
        self._constants = constants if constants is not None else RoutingConstants()
        self._nodes: dict[NodeId, _Node] = {}
        self._indices: dict[ModelId, CandidateIndex] = {}
        self._park_expiries: list[tuple[float, NodeId]] = []
        self._paid_holds: dict[ModelId, set[NodeId]] = {}
        self._contexts: dict[ModelId, SortedList] = {}
        """Per model, ``(context, node_id)`` of every live, non-draining node serving it."""
        self.local_version = 0
        """Bumped whenever a node connected here changes how it routes (for presence)."""

    @property
    def constants(self) -> RoutingConstants:
        return self._constants

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    # --- membership ----------------------------------------------------------------------------

    def upsert_node(
        self,
        info: NodeInfo,
        *,
        now: float,
        wall_now: float,
        health: Iterable[HealthBucket] = (),
    ) -> None:
        """Add a node that registered, or refresh one that re-registered (ending any drain).

        ``health`` restores saved buckets for a node not already known; a known node keeps the
        history held here, which is newer.
        """
        node = self._nodes.get(info.node_id)
        if node is None:
            window = HealthWindow.from_buckets(
                health, window_days=self._constants.health_window_days
            )
            node = _Node(info, Breaker(self._constants), window)
            self._nodes[info.node_id] = node
        else:
            self._set_key(node, None)
            if node.info.owner != info.owner:  # moved: its jobs are counted by the new owner
                node.in_flight = 0
            node.info = info
            node.declared = _declared_offers(info)
        if info.owner is None:
            node.remote_capacity = None
        elif node.remote_capacity is None:
            node.remote_capacity = 0  # nothing may go there before its owner reports
        node.live = True
        node.draining = False
        node.health_score = node.health.score(wall_now)
        node.admitted = self._admitted(info, wall_now)
        self._sync(node, now)

    def remove_node(self, node_id: NodeId) -> None:
        """The node disconnected: it takes no more jobs, but its record is kept."""
        node = self._nodes[node_id]
        node.live = False
        self._set_key(node, None)
        self._set_offers(node, ())

    def forget_node(self, node_id: NodeId) -> None:
        """Drop everything known about a node (save its health buckets first)."""
        node = self._nodes.pop(node_id)
        self._set_key(node, None)
        self._set_offers(node, ())
        for held in self._paid_holds.values():
            held.discard(node_id)

    # --- paid eligibility (the admission exam's result) ----------------------------------------

    def hold_paid(self, node_id: NodeId, model: ModelId) -> None:
        """The node may take probes for ``model`` but no paid job (it has not passed its exam,
        or is quarantined): :meth:`choose` passes it over for that model."""
        held = self._paid_holds.setdefault(model, set())
        if node_id not in held:
            held.add(node_id)
            self._paid_changed(node_id)

    def admit_paid(self, node_id: NodeId, model: ModelId) -> None:
        """The node passed its exam for ``model``: paid jobs may go there again."""
        held = self._paid_holds.get(model)
        if held is not None and node_id in held:
            held.discard(node_id)
            self._paid_changed(node_id)

    def paid_held(self, node_id: NodeId) -> tuple[ModelId, ...]:
        """The models the node may take no paid job for, sorted."""
        return tuple(sorted(model for model, held in self._paid_holds.items() if node_id in held))

    def _paid_changed(self, node_id: NodeId) -> None:
        node = self._nodes.get(node_id)
        if node is not None and node.info.owner is None:
            self.local_version += 1  # other replicas learn of it from the next presence

    def paid_eligible(self, node_id: NodeId, model: ModelId) -> bool:
        """Whether no exam holds the node back from paid jobs for ``model``."""
        return node_id not in self._paid_holds.get(model, ())

    def set_draining(self, node_id: NodeId, *, now: float) -> None:
        """The node is shutting down: it finishes its jobs but receives no new ones."""
        node = self._nodes[node_id]
        node.draining = True
        self._sync(node, now)

    def park(self, node_id: NodeId, *, until: float, now: float) -> None:
        """Park the node's breaker until ``until`` (monotonic): a park its previous replica
        decided, carried over when it reconnects here."""
        node = self._nodes[node_id]
        node.breaker.park_until_time(until)
        heapq.heappush(self._park_expiries, (until, node_id))
        self._sync(node, now)

    def record_measurement(self, node_id: NodeId, tok_s: float, *, now: float) -> None:
        """Set the node's measured sustained speed, which replaces its declared one at the floor."""
        node = self._nodes[node_id]
        node.measured_tok_s = tok_s
        self._sync(node, now)

    def observe_remote(
        self, node_id: NodeId, *, in_flight: int, capacity: int, health_score: float,
        measured_tok_s: float | None, draining: bool, now: float,
    ) -> None:
        """What a remote node's owner reported: its jobs from every replica, and the capacity
        its breaker and ramp-up allow now. Overwrites this router's own count, so a count here
        can never drift from the owner's."""
        node = self._nodes[node_id]
        if node.info.owner is None:
            raise ValueError(f"node {node_id} is connected here, not remote")
        node.in_flight = in_flight
        node.remote_capacity = capacity
        node.health_score = health_score
        node.measured_tok_s = measured_tok_s
        node.draining = draining
        self._sync(node, now)

    def release_remote(self, node_id: NodeId, *, now: float) -> None:
        """A job this router sent to a remote node ended; the owner judges its outcome.

        Quiet when the node has since moved here or gone (its count was reset then)."""
        node = self._nodes.get(node_id)
        if node is None or node.info.owner is None:
            return
        node.in_flight = max(0, node.in_flight - 1)
        self._sync(node, now)

    def mark_full(self, node_id: NodeId, *, now: float) -> None:
        """A remote node's owner refused a job for want of a slot: take none there until its
        owner's next report says otherwise."""
        node = self._nodes.get(node_id)
        if node is None or node.info.owner is None or node.remote_capacity is None:
            return
        node.in_flight = max(node.in_flight, node.remote_capacity)
        self._sync(node, now)

    def owner(self, node_id: NodeId) -> str | None:
        """The replica a node is connected to, or ``None`` when it is connected here."""
        return self._nodes[node_id].info.owner

    def live_nodes_serving(self, model: ModelId) -> list[NodeId]:
        """Every live, non-draining node serving ``model``, busy or not (O(n))."""
        return [
            node_id for node_id, node in self._nodes.items()
            if node.live and not node.draining and model in node.info.models
        ]

    def largest_context(self, model: ModelId) -> int | None:
        """The largest context a live, non-draining node serves ``model`` with, busy or not;
        ``None`` when no such node has declared one."""
        offers = self._contexts.get(model)
        if not offers:
            return None
        end = offers.bisect_left((UNKNOWN_CONTEXT,))
        return int(offers[end - 1][0]) if end > 0 else None

    def context_of(self, node_id: NodeId, model: ModelId) -> int | None:
        """The context the node serves ``model`` with, if it declared one."""
        node = self._nodes.get(node_id)
        return None if node is None else node.info.context_for(model)

    # --- jobs and outcomes ---------------------------------------------------------------------

    def job_started(self, node_id: NodeId, *, now: float) -> None:
        """A job was sent to the node; call it right after :meth:`choose`, with no await between."""
        node = self._nodes[node_id]
        node.in_flight += 1
        self._sync(node, now)

    def job_finished(
        self, node_id: NodeId, outcome: Outcome, *, now: float, wall_now: float,
        probe: bool = False,
    ) -> None:
        """A job on the node ended: free its slot, and feed the outcome to breaker and health.

        A probe's outcome goes to the breaker only: its verdict, which a judge may still
        overturn, reaches the health window through :meth:`record_probe`.
        """
        node = self._nodes[node_id]
        if node.info.owner is not None:  # it moved away mid-job: its new owner judges
            self.release_remote(node_id, now=now)
            return
        if node.in_flight <= 0:
            raise ValueError(f"node {node_id} has no job in flight")
        node.in_flight -= 1
        parked_before = node.breaker.park_until
        node.breaker.record(outcome, now)
        parked_after = node.breaker.park_until
        if parked_after is not None and parked_after != parked_before:
            heapq.heappush(self._park_expiries, (parked_after, node_id))
        if not probe:
            node.health.record(outcome, wall_now)
            node.health_score = node.health.score(wall_now)
        self._sync(node, now)

    def record_probe(
        self, node_id: NodeId, outcome: Outcome, *, now: float, wall_now: float
    ) -> None:
        """A probe's verdict: it counts in the health window but leaves the breaker alone."""
        node = self._nodes[node_id]
        node.health.record(outcome, wall_now, probe=True)
        node.health_score = node.health.score(wall_now)
        self._sync(node, now)

    def add_online(self, node_id: NodeId, seconds: float, *, wall_now: float) -> None:
        """Credit time online to the node's health window (not part of the score yet)."""
        self._nodes[node_id].health.add_online(seconds, wall_now)

    def refresh(self, *, now: float, wall_now: float) -> None:
        """Re-apply what changes with the passing of time alone: ramp-up and health ageing.

        O(n log n); the coordinator calls it periodically (minutes apart is plenty).
        """
        self._wake_parked(now)
        for node in self._nodes.values():
            if node.info.owner is None:  # a remote node's owner keeps these
                node.admitted = self._admitted(node.info, wall_now)
                node.health_score = node.health.score(wall_now)
            self._sync(node, now)

    # --- choosing ------------------------------------------------------------------------------

    def choose(
        self,
        model: ModelId,
        *,
        now: float,
        rng: random.Random,
        exclude: Set[NodeId] = frozenset(),
        min_context: int = 0,
    ) -> NodeId | None:
        """The least-loaded candidate for ``model`` not in ``exclude`` whose context holds
        ``min_context`` tokens (prompt plus completion), or ``None``.

        Most spare capacity wins, then the higher health score, then a uniform draw from
        ``rng``. Does not reserve the slot: call :meth:`job_started` for the node chosen.
        """
        self._wake_parked(now)
        index = self._indices.get(model)
        if index is None or len(index) == 0:
            return None
        passed_over = {*exclude, *self._paid_holds.get(model, ()), *self._too_small(
            model, min_context
        )}
        excluded: list[RouteKey] = []
        for node_id in passed_over:
            node = self._nodes.get(node_id)
            if node is not None and node.key is not None and model in node.info.models:
                excluded.append(node.key)
        return index.best(rng, excluded)

    def candidate_count(self, model: ModelId, *, now: float) -> int:
        """How many nodes could take a job for ``model`` right now."""
        self._wake_parked(now)
        index = self._indices.get(model)
        return 0 if index is None else len(index)

    # --- reading -------------------------------------------------------------------------------

    def snapshot(self, node_id: NodeId, *, now: float) -> NodeSnapshot:
        node = self._nodes[node_id]
        capacity = self._capacity(node, now)
        return NodeSnapshot(
            node_id=node_id,
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
            candidate=self._desired_key(node, now) is not None,
        )

    def snapshots(self, *, now: float) -> list[NodeSnapshot]:
        return [self.snapshot(node_id, now=now) for node_id in self._nodes]

    def health_buckets(self, node_id: NodeId, *, wall_now: float) -> tuple[HealthBucket, ...]:
        """The node's health window as plain data, for the store to save."""
        return self._nodes[node_id].health.buckets(wall_now)

    # --- internals -----------------------------------------------------------------------------

    def _admitted(self, info: NodeInfo, wall_now: float) -> int:
        fraction = ramp_fraction(wall_now - info.first_seen, self._constants)
        return admitted_capacity(info.slots, fraction)

    def _capacity(self, node: _Node, now: float) -> int:
        if node.remote_capacity is not None:
            return node.remote_capacity
        cap = node.breaker.slot_cap(now)
        return node.admitted if cap is None else min(node.admitted, cap)

    def _desired_key(self, node: _Node, now: float) -> RouteKey | None:
        if not node.live or node.draining:
            return None
        floor = self._constants.floor_tok_s
        if not passes_floor(node.info.declared_tok_s, node.measured_tok_s, floor):
            return None
        capacity = self._capacity(node, now)
        if node.in_flight >= capacity:
            return None
        spare = spare_capacity(capacity, node.in_flight)
        return route_key(spare, node.health_score, node.info.node_id,
                         remote=node.remote_capacity is not None)

    def _too_small(self, model: ModelId, min_context: int) -> list[NodeId]:
        """Live nodes serving ``model`` with a context under ``min_context``, smallest first."""
        offers = self._contexts.get(model)
        if not offers or min_context <= 0:
            return []
        end = offers.bisect_left((min_context,))
        return [node_id for _, node_id in offers.islice(0, end)]

    def _sync(self, node: _Node, now: float) -> None:
        self._set_key(node, self._desired_key(node, now))
        offered = node.live and not node.draining and node.info.node_id in self._nodes
        self._set_offers(node, node.declared if offered else ())

    def _set_offers(self, node: _Node, offers: tuple[_Offer, ...]) -> None:
        if offers == node.offers:
            return
        node_id = node.info.node_id
        for model, context in node.offers:
            self._contexts[model].remove((context, node_id))
        for model, context in offers:
            self._contexts.setdefault(model, SortedList()).add((context, node_id))
        node.offers = offers

    def _set_key(self, node: _Node, key: RouteKey | None) -> None:
        if key == node.key:
            return
        if node.info.owner is None:
            self.local_version += 1
        for model in node.info.models:
            index = self._indices.get(model)
            if index is None:
                index = self._indices[model] = CandidateIndex()
            if node.key is not None:
                index.remove(node.key)
            if key is not None:
                index.add(key)
        node.key = key

    def _wake_parked(self, now: float) -> None:
        """Return nodes whose park has ended to the index, as half-open."""
        expiries = self._park_expiries
        while expiries and expiries[0][0] <= now:
            _, node_id = heapq.heappop(expiries)
            node = self._nodes.get(node_id)
            if node is not None:
                self._sync(node, now)
