"""Limits shared by every replica, in Redis: rate buckets and concurrent streams per key.

Both run as one Lua script per decision, so two replicas deciding at once cannot both take the
last unit, and both read Redis's own clock, so the replicas' clocks need not agree.

- Rates: the GCRA of :func:`coordinator.limits.rates.gcra` on one stored TAT per bucket.
- Streams: a sorted set per key whose members are the streams in flight, each scored with the
  expiry of its lease. The replica renews its own streams' leases; a replica that dies stops
  renewing, and its streams stop counting within one lease (no phantom streams).

If Redis cannot be reached, a limit admits the request (logged, and counted in ``unchecked``): the
limits protect the gateway from its consumers, and must not become the reason it refuses every one
of them.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from coordinator.limits.rates import RetryAfter
from coordinator.periodic import every

log = logging.getLogger(__name__)

_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local cost, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local pushed = tat + cost * window / limit
local ahead = pushed - now - window
if ahead > 1e-9 then return tostring(ahead) end
redis.call('SET', KEYS[1], tostring(pushed), 'PX', math.ceil((pushed - now) * 1000) + 1)
return false
"""

_ENTER = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

_RENEW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[i - 1], 'XX', now + lease, ARGV[i])
  redis.call('PEXPIRE', KEYS[i - 1], lease)
end
return 0
"""


class RedisRates:
    """:class:`~coordinator.limits.rates.RateStore` on Redis."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._gcra = redis.register_script(_GCRA)
        self._prefix = prefix
        self.unchecked = 0  # requests admitted because Redis could not decide

    async def hit(self, key: str, cost: float, limit: int, window: float) -> RetryAfter | None:
        if limit <= 0 or window <= 0:
            raise ValueError("limit and window must be positive")
        try:
            ahead = await self._gcra(keys=[f"{self._prefix}:rate:{key}"],
                                     args=[cost, limit, window])
        except RedisError:
            self.unchecked += 1
            log.warning("rate limit %s not checked: Redis unreachable", key, exc_info=True)
            return None
        return None if ahead is None else RetryAfter(float(ahead))


class RedisStreams:
    """:class:`~coordinator.limits.streams.StreamGate` on Redis, with leases renewed by a loop
    (:meth:`run`) while this replica's streams are open."""

    def __init__(self, redis: aioredis.Redis, prefix: str, lease_s: float = 15.0) -> None:
        self._enter = redis.register_script(_ENTER)
        self._renew = redis.register_script(_RENEW)
        self._redis = redis
        self._prefix = prefix
        self._lease_ms = int(lease_s * 1000)
        self._mine: dict[str, list[str]] = defaultdict(list)  # key -> this replica's members
        self.unchecked = 0  # streams admitted because Redis could not decide

    def _set(self, key: str) -> str:
        return f"{self._prefix}:streams:{key}"

    async def enter(self, key: str, limit: int) -> bool:
        member = secrets.token_hex(8)
        try:
            taken = await self._enter(keys=[self._set(key)], args=[member, limit, self._lease_ms])
        except RedisError:
            self.unchecked += 1
            log.warning("stream limit %s not checked: Redis unreachable", key, exc_info=True)
            taken = 1
        if taken:
            self._mine[key].append(member)
        return bool(taken)

    async def leave(self, key: str) -> None:
        members = self._mine.get(key)
        if not members:
            return
        member = members.pop()
        if not members:
            del self._mine[key]
        try:
            await self._redis.zrem(self._set(key), member)
        except RedisError:  # its lease lapses instead
            log.warning("stream slot of %s not returned: Redis unreachable", key)

    async def run(self) -> None:
        """Renew this replica's streams' leases every third of a lease, forever."""
        await every(self._lease_ms / 3000, self._renew_leases, log, "renew stream leases",
                    wait_first=True)

    async def _renew_leases(self) -> None:
        pairs = [(self._set(key), m) for key, members in self._mine.items() for m in members]
        if pairs:
            await self._renew(keys=[k for k, _ in pairs],
                              args=[self._lease_ms, *(m for _, m in pairs)])
