"""Periodic jobs run on exactly one replica, and move when the leader dies or is cut off; shared
counters count across replicas. On the real Redis (and on the in-process bus for one replica)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support import required
from support.cluster import start_coordinator, wait_for
from support.replicas import REDIS_URL

from coordinator.bus import BusSettings, LocalBus, run_as_leader
from coordinator.bus.leader import leader_epoch
from coordinator.bus.redis import RedisBus

LEASE_S = 1.5



@pytest.fixture
def needs_redis() -> None:
    required.service_url("KORETEX_TEST_REDIS_URL", "Redis")


class Partition:
    """A TCP relay to Redis that can be cut, as a network partition would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()


class Ledger:
    """What the contenders' jobs did: who ran, under which epoch, and any overlap."""

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.overlaps = 0
        self.ticks: list[tuple[str, int]] = []

    def job(self, name: str) -> object:
        async def tick() -> None:
            self.active.add(name)
            try:
                while True:
                    if len(self.active) > 1:
                        self.overlaps += 1
                    self.ticks.append((name, leader_epoch.get()))
                    await asyncio.sleep(0.02)
            finally:
                self.active.discard(name)

        return tick


@pytest.mark.usefixtures("needs_redis")
async def test_exactly_one_leader_and_hand_over_when_it_is_cut_off() -> None:
    assert REDIS_URL is not None
    settings = BusSettings(prefix=f"test-{secrets.token_hex(6)}")
    url = urlsplit(REDIS_URL)
    partitions = [Partition(url.hostname or "127.0.0.1", url.port or 6379) for _ in range(3)]
    buses = [
        RedisBus(
            f"redis://127.0.0.1:{await partition.start()}{url.path}",
            settings.model_copy(update={"replica_id": f"r{i}"}),
        )
        for i, partition in enumerate(partitions)
    ]
    record = Ledger()
    tasks = {
        bus.replica_id: asyncio.create_task(
            run_as_leader(bus, "tick", record.job(bus.replica_id), lease_s=LEASE_S,  # type: ignore[arg-type]
                          retry_after_s=0.1)
        )
        for bus in buses
    }
    try:
        await wait_for(lambda: len(record.ticks) > 20, 10, "a leader to run the job")
        leaders = [bus for bus in buses if "tick" in bus.leading]
        assert len(leaders) == 1 and record.active == {leaders[0].replica_id}
        first = leaders[0]
        first_epoch = record.ticks[-1][1]

        # Cut the leader off from Redis: it must stop its job before its lease lapses, and one
        # of the others takes over within about one lease, under a higher fencing epoch.
        partitions[buses.index(first)].cut()
        await wait_for(
            lambda: record.active and first.replica_id not in record.active, LEASE_S * 4,
            "another replica to take over",
        )
        await wait_for(lambda: len(record.ticks) > 60, 10, "the new leader to run")
        successor, epoch = record.ticks[-1]
        assert successor != first.replica_id and epoch > first_epoch
        assert record.overlaps == 0
        assert sum("tick" in bus.leading for bus in buses) == 1
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for bus in buses:
            await bus.close()


@pytest.mark.usefixtures("needs_redis")
async def test_a_leader_that_stops_hands_over_at_once() -> None:
    assert REDIS_URL is not None
    settings = BusSettings(prefix=f"test-{secrets.token_hex(6)}")
    a = RedisBus(REDIS_URL, settings.model_copy(update={"replica_id": "a"}))
    b = RedisBus(REDIS_URL, settings.model_copy(update={"replica_id": "b"}))
    record = Ledger()
    first = asyncio.create_task(run_as_leader(a, "tick", record.job("a"), lease_s=30))  # type: ignore[arg-type]
    await wait_for(lambda: record.active == {"a"}, 10, "a to lead")
    second = asyncio.create_task(
        run_as_leader(b, "tick", record.job("b"), lease_s=30, retry_after_s=0.1)  # type: ignore[arg-type]
    )
    try:
        first.cancel()  # a graceful stop releases the lease: no need to wait 30 s
        await asyncio.gather(first, return_exceptions=True)
        await wait_for(lambda: record.active == {"b"}, 10, "b to take over")
        assert record.overlaps == 0
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        await a._redis.aclose()
        await b._redis.aclose()


@pytest.mark.usefixtures("needs_redis")
async def test_shared_counter_counts_across_replicas() -> None:
    assert REDIS_URL is not None
    settings = BusSettings(prefix=f"test-{secrets.token_hex(6)}")
    buses = [RedisBus(REDIS_URL, settings.model_copy(update={"replica_id": f"r{i}"}))
             for i in range(2)]
    try:
        counts = await asyncio.gather(*(buses[i % 2].count("key-1", 3600) for i in range(10)))
        assert sorted(counts) == list(range(1, 11))
        assert await buses[0].count("key-2", 3600) == 1
    finally:
        for bus in buses:
            await bus._redis.aclose()


async def test_one_replica_leads_in_process() -> None:
    now = [0.0]
    bus = LocalBus(monotonic=lambda: now[0], wall=lambda: 1000.0)
    first = await bus.acquire_lease("tick", 10)
    assert first == 1 and await bus.acquire_lease("tick", 10) is None
    assert await bus.renew_lease("tick", 1, 10)
    now[0] = 25.0  # the holder stopped renewing: the lease lapsed
    assert not await bus.renew_lease("tick", 1, 10)
    assert await bus.acquire_lease("tick", 10) == 2
    assert [await bus.count("k", 60) for _ in range(3)] == [1, 2, 3]


async def test_the_embedded_coordinator_runs_its_periodic_jobs_without_redis(
    tmp_path: Path,
) -> None:
    coordinator = await start_coordinator(tmp_path)
    try:
        services = coordinator.services
        assert not services.bus.distributed and coordinator.settings.redis_url is None
        await wait_for(
            lambda: {"ledger-holds", "bounties"} <= services.bus.leading, 10,
            "the hold release and the bounty recomputation",
        )
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"{coordinator.base_url}/healthz")).json()
        assert health["leads"] == ["bounties", "ledger-holds"] and health["network_nodes"] == 0
    finally:
        await coordinator.stop()
