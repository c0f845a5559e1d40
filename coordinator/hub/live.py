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

from coordinator.channel import ChannelEvent, DispatchFailed, JobCutOff
from protocol import FILL_CONTEXT_PROTOCOL_VERSION, SAMPLING_PROTOCOL_VERSION
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

JOB_CHANNEL_EVENTS = 256
"""Events one job's channel holds before the hub stops reading that node's socket: a slow
consumer holds back only its own node (whose frames wait in the kernel's buffers), never the
coordinator's memory nor other nodes' jobs."""
MAX_FAULTS_KEPT = 32
BACKPRESSURE_CHECK_S = 1.0  # how often a held-back delivery checks its job is still wanted
LEGACY_MAX_TOKENS = 512
"""What a job that fills the context asks of a node too old to be told so: the default
max_tokens before protocol version 3, which such nodes were always sent."""


class NodeTooOld(Exception):
    """The job needs a protocol version the node does not speak."""


def for_protocol(job: Job | ScoreRequest, protocol_version: int) -> Job | ScoreRequest:
    """``job`` as a node of ``protocol_version`` understands it; raises :class:`NodeTooOld`
    for a job whose parameters such a node would not honour."""
    if isinstance(job, Job) and job.needs_sampling_protocol and (
        protocol_version < SAMPLING_PROTOCOL_VERSION
    ):
        raise NodeTooOld(f"protocol {protocol_version} cannot take these sampling parameters")
    if isinstance(job, Job) and job.fill_context and (
        protocol_version < FILL_CONTEXT_PROTOCOL_VERSION
    ):
        params = job.params.model_copy(
            update={"max_tokens": min(job.params.max_tokens, LEGACY_MAX_TOKENS)}
        )
        return job.model_copy(update={"fill_context": False, "params": params})
    return job


def delta_violation(delta: TokenDelta) -> str | None:
    """Why a node's delta breaks the protocol's bounds, or None when it keeps them (its text
    is bounded by the session: ``protocol.session.MAX_TEXT_BYTES_PER_TOKEN``)."""
    if delta.logprobs and len(delta.logprobs) != delta.tokens:
        return f"delta claims {delta.tokens} tokens but carries {len(delta.logprobs)} entries"
    return None
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
    faults: list[str] = field(default_factory=list)  # its false claims, newest last (bounded)

    def record_fault(self, reason: str) -> None:
        """Remember a claim of the node's that its relayed events contradicted."""
        self.faults.append(reason)
        del self.faults[:-MAX_FAULTS_KEPT]

    @property
    def models(self) -> frozenset[ModelId]:
        return frozenset(offer.model for offer in self.register.models)

    @property
    def contexts(self) -> dict[ModelId, int]:
        """The context, in tokens, the node declared it serves each of its models with."""
        return {offer.model: offer.context_length for offer in self.register.models}

    async def send_text(self, text: str) -> None:
        async with self.send_lock:
            await self.send(text)


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
            if channel.full():  # the node is gone: its last undelivered delta goes with it
                channel.get_nowait()
            channel.put_nowait(JobCutOff(reason))
        node.channels.clear()
        self._notify()

    async def dispatch(
        self, node_id: NodeId, job: Job | ScoreRequest
    ) -> asyncio.Queue[ChannelEvent]:
        """Send ``job`` (a generation or a scoring) to the node; returns its events' channel."""
        node = self._nodes.get(node_id)
        if node is None or node.draining:
            raise DispatchFailed(node_id)
        try:
            job = for_protocol(job, node.register.protocol_version)
        except NodeTooOld as exc:
            raise DispatchFailed(node_id) from exc  # neutral: the next attempt goes to another node
        try:
            message = node.session.assign(job)
        except ProtocolViolation as exc:
            raise DispatchFailed(node_id) from exc
        channel: asyncio.Queue[ChannelEvent] = asyncio.Queue(JOB_CHANNEL_EVENTS)
        node.channels[job.job_id] = channel
        try:
            await node.send_text(encode(message))
        except (ConnectionError, RuntimeError) as exc:
            node.channels.pop(job.job_id, None)
            raise DispatchFailed(node_id) from exc
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
        """Route an event to its job's channel without waiting (a cloud node's relay, whose
        answer is bounded by ``max_tokens``); a job whose consumer stopped reading is ended."""
        channel = node.channels.get(event.job_id)
        if channel is None:
            return
        if isinstance(event, JobDone | JobFailed | TokenScores):
            del node.channels[event.job_id]
        try:
            channel.put_nowait(event)
        except asyncio.QueueFull:
            node.channels.pop(event.job_id, None)
            channel.get_nowait()
            channel.put_nowait(JobCutOff("consumer too slow"))

    async def deliver_waiting(self, node: LiveNode, event: JobEvent) -> None:
        """Route an event from the node's socket to its job's channel, waiting while the channel
        is full (the node's socket is not read meanwhile: backpressure on that node alone). An
        event for a job the hub forgot (cancelled, node gone) is dropped."""
        channel = node.channels.get(event.job_id)
        if channel is None:
            return
        job_id = event.job_id
        while True:
            try:
                channel.put_nowait(event)
                break
            except asyncio.QueueFull:
                pass
            with suppress(TimeoutError):
                async with asyncio.timeout(BACKPRESSURE_CHECK_S):
                    await channel.put(event)
                    break
            if node.channels.get(job_id) is not channel:
                return
        if isinstance(event, JobDone | JobFailed | TokenScores) and (
            node.channels.get(job_id) is channel
        ):
            del node.channels[job_id]

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


__all__ = ["ChannelEvent", "DispatchFailed", "JobCutOff", "LiveNode", "NodeHub", "TokenDelta"]
