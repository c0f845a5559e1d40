"""Live nodes and the jobs running on them.

The hub owns every connected node's session and the channel of each job in flight. The gateway
dispatches a job to a node it chose and reads that job's events from the channel; the websocket
loop (``coordinator.hub.connect``) feeds events in. A lost node ends all its channels at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime

from protocol.ids import JobId, ModelId, NodeId
from protocol.messages import (
    Job,
    JobDone,
    JobFailed,
    Register,
    ScoreRequest,
    TokenDelta,
    TokenScores,
    encode,
)
from protocol.session import CoordinatorSession, JobEvent, ProtocolViolation


@dataclass(frozen=True, slots=True)
class NodeLost:
    """The node's connection ended before the job did."""

    reason: str


ChannelEvent = JobEvent | NodeLost
Send = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[object]]


@dataclass(eq=False)
class LiveNode:
    node_id: NodeId
    register: Register
    session: CoordinatorSession
    send: Send
    close: Close
    connected_at: datetime
    payee_account_id: int
    first_seen: datetime
    model_switched_at: datetime | None = None
    channels: dict[JobId, asyncio.Queue[ChannelEvent]] = field(default_factory=dict)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    draining: bool = False
    operator: str | None = None  # the wallet (or account label) the node earns for

    @property
    def models(self) -> frozenset[ModelId]:
        return frozenset(offer.model for offer in self.register.models)

    async def send_text(self, text: str) -> None:
        async with self.send_lock:
            await self.send(text)


class NodeGone(Exception):
    """The chosen node disconnected before the job could be sent."""


class NodeHub:
    """The registry of connected nodes, keyed by node id."""

    def __init__(self) -> None:
        self._nodes: dict[NodeId, LiveNode] = {}
        self.changed = asyncio.Event()  # set whenever a node joins, leaves or frees a slot

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, node_id: NodeId) -> LiveNode | None:
        return self._nodes.get(node_id)

    def nodes(self) -> list[LiveNode]:
        return list(self._nodes.values())

    def nodes_serving(self, model: ModelId) -> list[LiveNode]:
        return [n for n in self._nodes.values() if model in n.models and not n.draining]

    def attach(self, node: LiveNode) -> LiveNode | None:
        """Add a node; returns the older connection of the same node, which the caller closes."""
        previous = self._nodes.get(node.node_id)
        self._nodes[node.node_id] = node
        self._notify()
        return previous

    def detach(self, node: LiveNode, reason: str) -> None:
        """Remove ``node`` (if still the current connection) and end its jobs' channels."""
        if self._nodes.get(node.node_id) is node:
            del self._nodes[node.node_id]
        for channel in node.channels.values():
            channel.put_nowait(NodeLost(reason))
        node.channels.clear()
        self._notify()

    async def dispatch(
        self, node_id: NodeId, job: Job | ScoreRequest
    ) -> asyncio.Queue[ChannelEvent]:
        """Send ``job`` (a generation or a scoring) to the node; returns its events' channel."""
        node = self._nodes.get(node_id)
        if node is None or node.draining:
            raise NodeGone(node_id)
        try:
            message = node.session.assign(job)
        except ProtocolViolation as exc:
            raise NodeGone(node_id) from exc
        channel: asyncio.Queue[ChannelEvent] = asyncio.Queue()
        node.channels[job.job_id] = channel
        try:
            await node.send_text(encode(message))
        except (ConnectionError, RuntimeError) as exc:
            node.channels.pop(job.job_id, None)
            raise NodeGone(node_id) from exc
        return channel

    async def cancel(self, node_id: NodeId, job_id: JobId) -> None:
        """Tell the node to stop ``job_id``; quiet if the node or the job is already gone."""
        node = self._nodes.get(node_id)
        if node is None:
            return
        node.channels.pop(job_id, None)
        message = node.session.cancel(job_id)
        if message is not None:
            with suppress(ConnectionError, RuntimeError):
                await node.send_text(encode(message))

    def deliver(self, node: LiveNode, event: JobEvent) -> None:
        """Route an event from the node to its job's channel."""
        channel = node.channels.get(event.job_id)
        if channel is None:
            return
        if isinstance(event, JobDone | JobFailed | TokenScores):
            del node.channels[event.job_id]
        channel.put_nowait(event)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every node's connection (on shutdown)."""
        await asyncio.gather(
            *(node.close(code, reason) for node in self._nodes.values()), return_exceptions=True
        )

    def notify_capacity(self) -> None:
        """Wake requests waiting for a free slot."""
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


__all__ = ["ChannelEvent", "LiveNode", "NodeGone", "NodeHub", "NodeLost", "TokenDelta"]
