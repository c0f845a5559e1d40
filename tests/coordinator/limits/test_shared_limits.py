"""Limits count across replicas: the per-key rate and concurrent streams live in the real Redis,
decided atomically there, and a dead replica's streams stop counting within one lease."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import openai
import pytest
from redis.asyncio import Redis
from support import required
from support.replicas import (
    MODEL,
    REDIS_URL,
    api_key,
    client,
    scripted_node,
    start_replicas,
    wait_for_async,
)

from coordinator.bus.redis import connect
from coordinator.clock import ShiftedClock
from coordinator.limits import InMemoryRates
from coordinator.limits.shared import RedisRates, RedisStreams
from coordinator.settings.bus import BusSettings


@pytest.fixture(autouse=True)
def redis_is_running() -> None:
    required.service_url("KORETEX_TEST_REDIS_URL", "Redis")


def two_clients() -> list[Redis]:
    """Two replicas' clients, built as the coordinator builds its own, but patient: these tests
    are about what Redis decides, not about a loaded machine's slow connection handshakes."""
    assert REDIS_URL is not None
    settings = BusSettings(max_connections=8, socket_timeout_s=30, connect_timeout_s=30)
    return [connect(REDIS_URL, settings) for _ in range(2)]


async def test_two_replicas_share_one_rate_bucket_and_decide_as_the_pure_rule() -> None:
    prefix = f"test-{secrets.token_hex(6)}"
    redis = two_clients()
    replicas = [RedisRates(r, prefix) for r in redis]
    reference = InMemoryRates(ShiftedClock())
    try:
        decisions = [await replicas[i % 2].hit("key:1", 1, 5, 60) for i in range(7)]
        expected = [await reference.hit("key:1", 1, 5, 60) for _ in range(7)]
        assert [d is None for d in decisions] == [e is None for e in expected] == [
            True] * 5 + [False] * 2
        refused = decisions[-1]
        assert refused is not None and 11 < refused.seconds <= 12  # one interval: 60 s / 5
        assert await replicas[0].hit("key:2", 1, 5, 60) is None  # buckets are per key
        # Concurrent hits from both replicas never admit more than the limit. A hit Redis could
        # not answer in time is admitted unchecked (by design, and counted); it may or may not
        # have taken a unit in Redis, so only the bounds are exact then.
        burst = await asyncio.gather(*(replicas[i % 2].hit("key:3", 1, 10, 60)
                                       for i in range(40)))
        admitted = sum(d is None for d in burst)
        unchecked = sum(r.unchecked for r in replicas)
        assert unchecked < 10, "Redis answered too few hits for the burst to mean anything"
        assert 10 <= admitted <= 10 + unchecked
    finally:
        for r in redis:
            await r.aclose()


async def test_streams_are_counted_across_replicas_and_a_dead_ones_lapse() -> None:
    prefix = f"test-{secrets.token_hex(6)}"
    redis = two_clients()
    alive = RedisStreams(redis[0], prefix, lease_s=0.6)
    dying = RedisStreams(redis[1], prefix, lease_s=0.6)
    renewing = asyncio.create_task(alive.run())
    try:
        assert await alive.enter("key:1", 3) and await dying.enter("key:1", 3)
        assert await dying.enter("key:1", 3)
        assert not await alive.enter("key:1", 3)  # three in flight across the two
        await dying.leave("key:1")
        assert await alive.enter("key:1", 3)
        # "dying" stops renewing (its replica died with a stream open): within a lease its
        # stream no longer counts, while "alive" keeps its two by renewing them.
        await asyncio.sleep(1.5)
        assert await alive.enter("key:1", 3)
        assert not await alive.enter("key:1", 3)
        for _ in range(3):
            await alive.leave("key:1")
        assert await redis[0].zcard(f"{prefix}:streams:key:1") == 0
    finally:
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
        for r in redis:
            await r.aclose()


async def test_a_keys_request_limit_holds_across_two_replicas(
    tmp_path: Path, shared_database: str
) -> None:
    replicas = await start_replicas(tmp_path, shared_database, 2,
                                    KORETEX_LIMITS__REQUESTS_PER_MINUTE_PER_KEY="6")
    node = scripted_node([replicas[0].base_url], tmp_path / "node", "--delay", "0")
    try:
        await node.start(wait=False)
        key = await api_key(shared_database, "consumer")
        consumers = [client(replica.base_url, key) for replica in replicas]

        async def both_see_the_node() -> bool:
            healths = [await replica.health() for replica in replicas]
            return all(health["network_nodes"] == 1 for health in healths)

        await wait_for_async(both_see_the_node, 30, "both replicas to see the node")
        outcomes: list[int] = []
        for i in range(10):
            try:
                await consumers[i % 2].chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"q{i}"}], max_tokens=2,
                )
                outcomes.append(200)
            except openai.RateLimitError as error:
                assert int(error.response.headers["Retry-After"]) >= 1
                outcomes.append(429)
        # Six per minute in all, not six on each replica.
        assert outcomes == [200] * 6 + [429] * 4
    finally:
        await node.stop()
        await asyncio.gather(*(replica.stop() for replica in replicas))
