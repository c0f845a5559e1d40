"""The bus of a network of replicas, on one Redis shared by all of them.

Relay goes over **Redis Streams**, one inbox stream per replica (``{prefix}:inbox:{replica}``)
carrying jobs, cancels and the events coming back, rather than over pub/sub:

- *ordering*: one stream per addressee, written by one writer task per sender, so a job's
  events arrive in the order its node produced them, and a cancel never overtakes its job;
- *no lost start*: an entry waits in the stream until the addressee reads it, whereas a pub/sub
  message published while the reader is (re)subscribing is gone; a token is never dropped
  because a reader was between two ``XREAD`` calls;
- *backpressure and bounds*: every sender batches what is queued into one pipeline per round
  trip, and each stream is trimmed (``MAXLEN ~``) and expires when its replica stops reading, so
  a dead replica leaves nothing to clean up by hand;
- *loss on replica death*: entries for a dead replica are never read and expire with its inbox;
  the dispatcher notices through presence (the dead replica's lease lapses) or through the
  inter-token timeout, ends the attempt as a node failure, and the gateway resumes on another
  node or sends the consumer a clean error, charging only what was delivered. A dispatcher that
  dies lets its per-job leases lapse, and the owner cancels those jobs on their nodes.

A breaker park is a key per node that expires when the park ends. Presence is one key per
replica holding its :class:`~coordinator.bus.base.ReplicaPresence` with a TTL (the lease),
indexed in a sorted set by expiry. Leader leases are ``SET NX PX`` with a fencing epoch from
``INCR``, renewed and released by compare-and-set scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from coordinator.bus.base import (
    RelayCancel,
    RelayEvent,
    RelayHandler,
    RelayJob,
    RelayMessage,
    ReplicaPresence,
    presence_records,
    relay_messages,
)
from coordinator.channel import ChannelEvent, DispatchFailed, JobCutOff
from coordinator.periodic import every, stop_if_cancelled
from coordinator.settings.bus import BusSettings
from protocol.ids import JobId, NodeId
from protocol.messages import Job, JobDone, JobFailed, TokenDelta

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
SEND_BATCH = 512


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def connect(url: str, settings: BusSettings) -> aioredis.Redis:
    """A client on a bounded pool of connections, every wait on Redis bounded."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=settings.max_connections,
        timeout=settings.socket_timeout_s, socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.connect_timeout_s,
    )
    return aioredis.Redis.from_pool(pool)


class RedisBus:
    distributed = True

    def __init__(self, url: str, settings: BusSettings) -> None:
        self.replica_id = settings.replica_id or default_replica_id()
        self.leading: set[str] = set()
        self._settings = settings
        self._redis = connect(url, settings)
        self._prefix = settings.prefix
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._channels: dict[JobId, tuple[str, asyncio.Queue[ChannelEvent]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._handler: RelayHandler | None = None
        self._relayed: dict[JobId, asyncio.Task[None]] = {}
        self._presence_seen: dict[str, tuple[str, ReplicaPresence]] = {}

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool, for other state the replicas share (limits)."""
        return self._redis

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, handler: RelayHandler) -> None:
        await self._redis.ping()
        self._handler = handler
        inbox = self._key("inbox", self.replica_id)
        # Read from now on: anything addressed to an earlier replica of this name is stale.
        await self._redis.xadd(inbox, {"m": ""}, maxlen=self._settings.stream_max_len)
        await self._redis.pexpire(inbox, self._inbox_ttl_ms())
        self._tasks = [
            asyncio.create_task(self._read_inbox(inbox), name="bus-inbox"),
            asyncio.create_task(self._write_outbox(), name="bus-outbox"),
            asyncio.create_task(self._renew_job_leases(), name="bus-job-leases"),
        ]

    async def close(self) -> None:
        for task in [*self._tasks, *self._relayed.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._relayed.values(), return_exceptions=True)
        for _, channel in self._channels.values():
            channel.put_nowait(JobCutOff("coordinator shutting down"))
        self._channels.clear()
        await self._redis.aclose()

    def _inbox_ttl_ms(self) -> int:
        return int(self._settings.presence_ttl_s * 10 * 1000)

    # --- presence ------------------------------------------------------------------------------

    async def publish_presence(self, presence: ReplicaPresence) -> None:
        ttl_ms = int(self._settings.presence_ttl_s * 1000)
        expires = time.time() * 1000 + ttl_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key("presence", self.replica_id), presence.model_dump_json(), px=ttl_ms)
            pipe.zadd(self._key("replicas"), {self.replica_id: expires})
            pipe.pexpire(self._key("inbox", self.replica_id), self._inbox_ttl_ms())
            await pipe.execute()

    async def withdraw_presence(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._key("presence", self.replica_id))
            pipe.zrem(self._key("replicas"), self.replica_id)
            await pipe.execute()

    async def read_presence(self) -> list[ReplicaPresence]:
        now_ms = time.time() * 1000
        replicas_key = self._key("replicas")
        members: Any = await self._redis.zrangebyscore(replicas_key, now_ms, "+inf")
        replicas = [r for r in members if r != self.replica_id]
        await self._redis.zremrangebyscore(replicas_key, "-inf", now_ms)
        if not replicas:
            return []
        raw: Any = await self._redis.mget(
            [self._key("presence", r) for r in replicas]
        )
        parsed: dict[str, tuple[str, ReplicaPresence]] = {}
        for replica, item in zip(replicas, raw, strict=True):
            if item:
                seen = self._presence_seen.get(replica)  # unchanged: parse it once
                parsed[replica] = (
                    seen if seen is not None and seen[0] == item
                    else (item, presence_records.validate_json(item))
                )
        self._presence_seen = parsed
        return [presence for _, presence in parsed.values()]

    # --- relay ---------------------------------------------------------------------------------

    async def dispatch(
        self, replica: str, node_id: NodeId, job: Job
    ) -> asyncio.Queue[ChannelEvent]:
        channel: asyncio.Queue[ChannelEvent] = asyncio.Queue()
        try:
            await self._redis.set(
                self._key("job", job.job_id), self.replica_id,
                px=int(self._settings.job_lease_s * 1000),
            )
        except RedisError as exc:
            raise DispatchFailed(node_id) from exc
        self._channels[job.job_id] = (replica, channel)
        self._send(replica, RelayJob(origin=self.replica_id, node_id=node_id, job=job))
        return channel

    async def cancel(self, replica: str, job_id: JobId) -> None:
        if self._channels.pop(job_id, None) is None:
            return
        self._send(replica, RelayCancel(job_id=job_id))
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._key("job", job_id))

    def replica_gone(self, replica: str, reason: str) -> None:
        for job_id, (owner, channel) in list(self._channels.items()):
            if owner == replica:
                del self._channels[job_id]
                channel.put_nowait(JobCutOff(reason))

    async def reply(self, origin: str, event: TokenDelta | JobDone | JobFailed) -> None:
        self._send(origin, RelayEvent(event=event))

    async def job_leases_alive(self, job_ids: list[JobId]) -> set[JobId]:
        if not job_ids:
            return set()
        held = await self._redis.mget([self._key("job", str(j)) for j in job_ids])
        return {job_id for job_id, owner in zip(job_ids, held, strict=True) if owner}

    def _send(self, replica: str, message: RelayMessage) -> None:
        self._outbox.put_nowait((replica, message.model_dump_json()))

    async def _write_outbox(self) -> None:
        """The one writer: drains what is queued into one pipeline per round trip, in order."""
        max_len = self._settings.stream_max_len
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < SEND_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for replica, data in batch:
                        pipe.xadd(self._key("inbox", replica), {"m": data}, maxlen=max_len)
                    await pipe.execute()
            except RedisError:
                stop_if_cancelled()
                log.exception("bus: %d message(s) not sent", len(batch))

    async def _read_inbox(self, inbox: str) -> None:
        last = "$"
        while True:
            try:
                answer: Any = await self._redis.xread({inbox: last}, count=1000, block=1000)
            except RedisError:
                stop_if_cancelled()
                log.exception("bus: inbox read failed")
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    last = entry_id
                    data = fields.get("m")
                    if data:
                        self._receive(relay_messages.validate_json(data))

    def _receive(self, message: RelayMessage) -> None:
        if isinstance(message, RelayEvent):
            event = message.event
            waiting = self._channels.get(event.job_id)
            if waiting is None:
                return
            if isinstance(event, JobDone | JobFailed):
                del self._channels[event.job_id]
            waiting[1].put_nowait(event)
        elif isinstance(message, RelayJob):
            assert self._handler is not None
            task = asyncio.create_task(self._handler(message))
            job_id = message.job.job_id
            self._relayed[job_id] = task
            task.add_done_callback(lambda _: self._relayed.pop(job_id, None))
        else:
            running = self._relayed.get(message.job_id)
            if running is not None:
                running.cancel()

    async def _renew_job_leases(self) -> None:
        """Forever, every third of a lease: renew the leases of jobs waited on here, and
        cancel relayed jobs whose lease lapsed."""
        await every(self._settings.job_lease_s / 3, self._check_job_leases, log,
                    "renew job leases on the bus", wait_first=True)

    async def _check_job_leases(self) -> None:
        if self._channels:
            ttl_ms = int(self._settings.job_lease_s * 1000)
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in list(self._channels):
                    pipe.pexpire(self._key("job", job_id), ttl_ms)
                await pipe.execute()
        relayed = list(self._relayed)
        alive = await self.job_leases_alive(relayed)
        for job_id in relayed:
            if job_id not in alive and job_id in self._relayed:
                log.info("bus: job %s lost its dispatcher; cancelling", job_id)
                self._relayed[job_id].cancel()

    # --- leases and counters -------------------------------------------------------------------

    async def acquire_lease(self, name: str, ttl_s: float) -> int | None:
        key = self._key("leader", name)
        if await self._redis.exists(key):
            return None
        epoch = int(await self._redis.incr(self._key("leader-epoch", name)))
        taken = await self._redis.set(
            key, f"{self.replica_id}:{epoch}", nx=True, px=int(ttl_s * 1000)
        )
        return epoch if taken else None

    async def renew_lease(self, name: str, epoch: int, ttl_s: float) -> bool:
        held = await self._renew(
            keys=[self._key("leader", name)],
            args=[f"{self.replica_id}:{epoch}", int(ttl_s * 1000)],
        )
        return bool(held)

    async def release_lease(self, name: str, epoch: int) -> None:
        await self._release(
            keys=[self._key("leader", name)], args=[f"{self.replica_id}:{epoch}"]
        )

    async def record_park(self, node_id: NodeId, until: float) -> None:
        remaining_ms = int((until - time.time()) * 1000)
        if remaining_ms > 0:
            await self._redis.set(self._key("park", node_id), repr(until), px=remaining_ms)

    async def park_of(self, node_id: NodeId) -> float | None:
        until = await self._redis.get(self._key("park", node_id))
        return float(until) if until is not None and float(until) > time.time() else None

    async def count(self, key: str, window_s: float) -> int:
        window = math.floor(time.time() / window_s)
        counter = self._key("count", key, str(window))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            pipe.pexpire(counter, int(window_s * 2000))
            value, _ = await pipe.execute()
        return int(value)
