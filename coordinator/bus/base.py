"""The bus between replicas: what crosses it, and the interface both implementations share.

One replica on its own uses :class:`~coordinator.bus.local.LocalBus` (today's behaviour: nothing
leaves the process); several replicas share one Redis through
:class:`~coordinator.bus.redis.RedisBus`. The code above the bus is the same either way.

What crosses it:

- presence: each replica's :class:`ReplicaPresence`, the routing view of the nodes connected to
  it, under a lease the replica renews; a replica that stops renewing is gone with its nodes;
- relay: a job for a node connected to another replica (:class:`RelayJob`), its cancellation
  (:class:`RelayCancel`) and every event back (:class:`RelayEvent`), each on the addressee's
  inbox; the sender holds a per-job lease while it waits, so a job whose consumer's replica died
  is cancelled on its node rather than left running;
- leases: named, fenced, expiring leader leases for periodic jobs (:mod:`coordinator.bus.leader`);
- breaker parks: a node parked by its owner stays parked when it reconnects to another replica;
- counters: fixed-window shared counters (rate limits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, TypeAdapter

from coordinator.channel import ChannelEvent
from protocol.chat import WireModel
from protocol.ids import JobId, ModelId, NodeId
from protocol.messages import Job, JobDone, JobFailed, TokenDelta


class NodePresence(WireModel):
    """One node as its owner sees it: enough for another replica to route to it and bill it."""

    node_id: NodeId
    models: tuple[ModelId, ...]
    slots: int
    declared_tok_s: float | None
    measured_tok_s: float | None
    first_seen: float  # epoch seconds
    connected_at: float  # epoch seconds; the newest connection wins if two replicas claim it
    model_switched_at: float | None
    payee_account_id: int
    in_flight: int  # jobs running on it, from every replica
    capacity: int  # slots its ramp-up and breaker allow now
    health_score: float
    draining: bool
    parked_until: float | None = None  # epoch seconds, while its breaker parks it
    contexts: dict[ModelId, int] = Field(default_factory=dict)
    """The context it serves each model with (absent from an older replica's presence)."""
    paid_held: tuple[ModelId, ...] = ()
    """Models it may take no paid job for: its admission exam is not passed (or a fake verdict
    sent it back), as its owner judged."""


class FakeNotice(WireModel):
    """A fake verdict a replica gave on a node connected elsewhere; ``serial`` increases."""

    serial: int
    node_id: NodeId
    model: ModelId


class ReplicaPresence(WireModel):
    replica: str
    published_at: float
    nodes: tuple[NodePresence, ...]
    refused: dict[str, int] = Field(default_factory=dict)
    """Requests this replica refused for want of a node over the bounty window, per model."""
    removed: tuple[NodeId, ...] = ()
    """Nodes this replica removed from the network lately: whoever holds one disconnects it."""
    fakes: tuple[FakeNotice, ...] = ()
    """Its latest fake verdicts on nodes connected elsewhere: their owners quarantine them."""


class RelayJob(WireModel):
    kind: Literal["job"] = "job"
    origin: str  # the replica that waits for the events
    node_id: NodeId
    job: Job


class RelayCancel(WireModel):
    kind: Literal["cancel"] = "cancel"
    job_id: JobId


class RelayEvent(WireModel):
    kind: Literal["event"] = "event"
    event: Annotated[TokenDelta | JobDone | JobFailed, Field(discriminator="type")]


RelayMessage = Annotated[RelayJob | RelayCancel | RelayEvent, Field(discriminator="kind")]
relay_messages: TypeAdapter[RelayMessage] = TypeAdapter(RelayMessage)
presence_records: TypeAdapter[ReplicaPresence] = TypeAdapter(ReplicaPresence)

RelayHandler = Callable[[RelayJob], Coroutine[Any, Any, None]]
"""Runs a job another replica sent here, sending its events back with :meth:`Bus.reply`."""


class Bus(Protocol):
    """What the coordinator needs from the bus; see the module docstring."""

    replica_id: str
    distributed: bool  # False: one replica, nothing to publish or relay
    leading: set[str]  # names of the periodic jobs this replica leads now

    async def start(self, handler: RelayHandler) -> None:
        """Begin reading this replica's inbox; relayed jobs go to ``handler``."""

    async def close(self) -> None: ...

    async def publish_presence(self, presence: ReplicaPresence) -> None: ...

    async def withdraw_presence(self) -> None:
        """This replica is leaving: its nodes are no longer reachable through it."""

    async def read_presence(self) -> list[ReplicaPresence]:
        """Every other live replica's latest presence."""

    async def dispatch(
        self, replica: str, node_id: NodeId, job: Job
    ) -> asyncio.Queue[ChannelEvent]:
        """Send ``job`` to ``node_id`` on ``replica``; its events arrive on the channel returned.

        Raises :class:`~coordinator.channel.DispatchFailed` when it cannot be sent."""

    async def cancel(self, replica: str, job_id: JobId) -> None:
        """Stop waiting for a dispatched job and tell its replica to cancel it."""

    def replica_gone(self, replica: str, reason: str) -> None:
        """End every channel waiting on ``replica``."""

    async def reply(self, origin: str, event: TokenDelta | JobDone | JobFailed) -> None:
        """Send an event of a relayed job back to the replica that dispatched it."""

    async def job_leases_alive(self, job_ids: list[JobId]) -> set[JobId]:
        """Which of these relayed jobs' dispatchers still hold their lease."""

    async def acquire_lease(self, name: str, ttl_s: float) -> int | None:
        """Take the named lease if free; returns its fencing epoch (strictly increasing)."""

    async def renew_lease(self, name: str, epoch: int, ttl_s: float) -> bool:
        """Extend a lease still held under ``epoch``; False if it was lost."""

    async def release_lease(self, name: str, epoch: int) -> None: ...

    async def record_park(self, node_id: NodeId, until: float) -> None:
        """Share that the node's breaker parked it until ``until`` (epoch seconds)."""

    async def park_of(self, node_id: NodeId) -> float | None:
        """Until when (epoch seconds) some replica parked the node, if it still is."""

    async def count(self, key: str, window_s: float) -> int:
        """Add one to the shared counter ``key`` in the current ``window_s`` window and return it.

        Every replica sees the same count; windows are aligned on epoch time."""
