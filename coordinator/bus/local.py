"""The bus of a replica on its own: nothing leaves the process.

Presence has no one to tell, no node lives elsewhere, and leases and counters are held in
memory, so periodic jobs run here through the same :func:`~coordinator.bus.leader.run_as_leader`
as they do on a network of replicas.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from coordinator.bus.base import RelayHandler, ReplicaPresence
from coordinator.channel import ChannelEvent, DispatchFailed
from protocol.ids import JobId, NodeId
from protocol.messages import Job, JobDone, JobFailed, TokenDelta


class LocalBus:
    distributed = False

    def __init__(
        self, replica_id: str = "local", *, monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.replica_id = replica_id
        self.leading: set[str] = set()
        self._monotonic = monotonic
        self._wall = wall
        self._leases: dict[str, tuple[int, float]] = {}  # name -> (epoch, expires at)
        self._epochs: dict[str, int] = {}
        self._counts: dict[tuple[str, int], int] = {}

    async def start(self, handler: RelayHandler) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish_presence(self, presence: ReplicaPresence) -> None:
        return None

    async def withdraw_presence(self) -> None:
        return None

    async def read_presence(self) -> list[ReplicaPresence]:
        return []

    async def dispatch(
        self, replica: str, node_id: NodeId, job: Job
    ) -> asyncio.Queue[ChannelEvent]:
        raise DispatchFailed(node_id)  # no other replica exists

    async def cancel(self, replica: str, job_id: JobId) -> None:
        return None

    def replica_gone(self, replica: str, reason: str) -> None:
        return None

    async def reply(self, origin: str, event: TokenDelta | JobDone | JobFailed) -> None:
        return None

    async def job_leases_alive(self, job_ids: list[JobId]) -> set[JobId]:
        return set(job_ids)

    async def acquire_lease(self, name: str, ttl_s: float) -> int | None:
        now = self._monotonic()
        held = self._leases.get(name)
        if held is not None and held[1] > now:
            return None
        epoch = self._epochs[name] = self._epochs.get(name, 0) + 1
        self._leases[name] = (epoch, now + ttl_s)
        return epoch

    async def renew_lease(self, name: str, epoch: int, ttl_s: float) -> bool:
        held = self._leases.get(name)
        now = self._monotonic()
        if held is None or held[0] != epoch or held[1] <= now:
            return False
        self._leases[name] = (epoch, now + ttl_s)
        return True

    async def release_lease(self, name: str, epoch: int) -> None:
        held = self._leases.get(name)
        if held is not None and held[0] == epoch:
            del self._leases[name]

    async def record_park(self, node_id: NodeId, until: float) -> None:
        return None  # this replica's router remembers the park itself

    async def park_of(self, node_id: NodeId) -> float | None:
        return None

    async def count(self, key: str, window_s: float) -> int:
        window = math.floor(self._wall() / window_s)
        for stale in [k for k in self._counts if k[0] == key and k[1] < window]:
            del self._counts[stale]
        count = self._counts[key, window] = self._counts.get((key, window), 0) + 1
        return count
