"""The routing table: which live node should take the next job for a model.

:class:`Router` keeps, per model, an index of exactly the nodes that could take a job now, and
updates it as jobs start and finish, so :meth:`Router.choose` costs O(log n) rather than a scan.
It never reads a clock and owns no randomness: ``now`` is monotonic seconds (breaker),
``wall_now`` epoch seconds (health window, ramp-up), and ``rng`` is passed to each pick.

What one node's record holds and how it ranks is in :mod:`coordinator.routing.nodes`; the
contexts on offer per model in :mod:`coordinator.routing.contexts`; the exam's holds on paid
jobs in :mod:`coordinator.routing.paid`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Set

from coordinator.routing.breaker import Breaker
from coordinator.routing.constants import RoutingConstants
from coordinator.routing.contexts import ContextOffers, Offer
from coordinator.routing.health import HealthBucket, HealthWindow
from coordinator.routing.index import CandidateIndex, RouteKey
from coordinator.routing.nodes import (
    NodeInfo,
    NodeSnapshot,
    RoutedNode,
    candidate_key,
    snapshot_of,
)
from coordinator.routing.outcome import Outcome
from coordinator.routing.paid import PaidHolds
from coordinator.routing.rules import admitted_capacity, ramp_fraction
from protocol.ids import ModelId, NodeId


class Router:
    """Least-loaded routing over live nodes, with breaker, speed floor and ramp-up applied.

    A removed node is remembered (breaker, health, measurement, in-flight count) until
    :meth:`forget_node`, so reconnecting does not clear a parked breaker.
    Unknown node ids raise :class:`KeyError`.
    """

    def __init__(self, constants: RoutingConstants | None = None) -> None:
        self._constants = constants if constants is not None else RoutingConstants()
        self._nodes: dict[NodeId, RoutedNode] = {}
        self._indices: dict[ModelId, CandidateIndex] = {}
        self._park_expiries: list[tuple[float, NodeId]] = []
        self._paid_holds = PaidHolds()
        self._contexts = ContextOffers()
        """Every live, non-draining node's offers."""
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
            node = RoutedNode(info, Breaker(self._constants), window)
            self._nodes[info.node_id] = node
        else:
            self._set_key(node, None)
            if node.info.owner != info.owner:  # moved: its jobs are counted by the new owner
                node.in_flight = 0
            node.declare(info)
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
        self._paid_holds.forget(node_id)

    # --- paid eligibility (the admission exam's result) ----------------------------------------

    def hold_paid(self, node_id: NodeId, model: ModelId) -> None:
        """The node may take probes for ``model`` but no paid job (it has not passed its exam,
        or is quarantined): :meth:`choose` passes it over for that model."""
        if self._paid_holds.hold(node_id, model):
            self._paid_changed(node_id)

    def admit_paid(self, node_id: NodeId, model: ModelId) -> None:
        """The node passed its exam for ``model``: paid jobs may go there again."""
        if self._paid_holds.admit(node_id, model):
            self._paid_changed(node_id)

    def paid_held(self, node_id: NodeId) -> tuple[ModelId, ...]:
        """The models the node may take no paid job for, sorted."""
        return self._paid_holds.models_held(node_id)

    def _paid_changed(self, node_id: NodeId) -> None:
        node = self._nodes.get(node_id)
        if node is not None and node.info.owner is None:
            self.local_version += 1  # other replicas learn of it from the next presence

    def paid_eligible(self, node_id: NodeId, model: ModelId) -> bool:
        """Whether no exam holds the node back from paid jobs for ``model``."""
        return self._paid_holds.eligible(node_id, model)

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
        return self._contexts.largest(model)

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
        passed_over = {
            *exclude,
            *self._paid_holds.held_for(model),
            *self._contexts.smaller_than(model, min_context),
        }
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
        return snapshot_of(self._nodes[node_id], now, self._constants.floor_tok_s)

    def snapshots(self, *, now: float) -> list[NodeSnapshot]:
        return [self.snapshot(node_id, now=now) for node_id in self._nodes]

    def health_buckets(self, node_id: NodeId, *, wall_now: float) -> tuple[HealthBucket, ...]:
        """The node's health window as plain data, for the store to save."""
        return self._nodes[node_id].health.buckets(wall_now)

    # --- internals -----------------------------------------------------------------------------

    def _admitted(self, info: NodeInfo, wall_now: float) -> int:
        fraction = ramp_fraction(wall_now - info.first_seen, self._constants)
        return admitted_capacity(info.slots, fraction)

    def _sync(self, node: RoutedNode, now: float) -> None:
        self._set_key(node, candidate_key(node, now, self._constants.floor_tok_s))
        offered = node.live and not node.draining and node.info.node_id in self._nodes
        self._set_offers(node, node.declared if offered else ())

    def _set_offers(self, node: RoutedNode, offers: tuple[Offer, ...]) -> None:
        if offers == node.offers:
            return
        self._contexts.replace(node.info.node_id, node.offers, offers)
        node.offers = offers

    def _set_key(self, node: RoutedNode, key: RouteKey | None) -> None:
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
