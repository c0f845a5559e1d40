"""Rate buckets: the generic cell rate algorithm, pure, behind a one-method store.

GCRA keeps one number per bucket, the *theoretical arrival time* (TAT): when the bucket would be
empty again if every admitted request had arrived exactly on schedule. A request of ``cost``
pushes the TAT forward by ``cost × window / limit``; it is admitted when the pushed TAT is at most
``window`` ahead of now, so a quiet client may burst up to ``limit`` requests and then runs at
``limit`` per ``window``. One number per bucket is what makes it cheap to keep in Redis (one
``SET`` with a TTL of ``window``) as well as in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from coordinator.clock import Clock


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """A refusal: the request would fit ``seconds`` from now."""

    seconds: float

    @property
    def header(self) -> int:
        """The ``Retry-After`` value: whole seconds, rounded up, at least 1."""
        return max(1, math.ceil(self.seconds))


def gcra(
    tat: float | None, now: float, cost: float, limit: int, window: float
) -> tuple[float | None, RetryAfter | None]:
    """Decide one request against a bucket whose stored TAT is ``tat`` (None: never used).

    Returns ``(new_tat, None)`` when admitted (store ``new_tat``), or ``(None, RetryAfter)``
    when refused (store nothing: a refused request costs the client nothing).
    """
    if limit <= 0 or window <= 0:
        raise ValueError("limit and window must be positive")
    interval = window / limit
    pushed = max(tat if tat is not None else now, now) + cost * interval
    ahead = pushed - now - window
    if ahead > 1e-9:
        return None, RetryAfter(ahead)
    return pushed, None


class RateStore(Protocol):
    """Where buckets live: this process's memory, or Redis shared by every replica."""

    unchecked: int
    """Hits admitted without a decision (the store was unreachable)."""

    async def hit(self, key: str, cost: float, limit: int, window: float) -> RetryAfter | None:
        """Charge ``cost`` to bucket ``key`` (``limit`` per ``window`` seconds); None: admitted."""
        ...


class InMemoryRates:
    """Buckets in a dict, for one replica (and for tests); stale buckets are swept lazily."""

    def __init__(self, clock: Clock, sweep_every: int = 10_000) -> None:
        self._clock = clock
        self.unchecked = 0  # memory always answers
        self._tats: dict[str, float] = {}
        self._sweep_every = sweep_every
        self._since_sweep = 0

    async def hit(self, key: str, cost: float, limit: int, window: float) -> RetryAfter | None:
        now = self._clock.monotonic()
        new_tat, refusal = gcra(self._tats.get(key), now, cost, limit, window)
        if new_tat is not None:
            self._tats[key] = new_tat
        self._since_sweep += 1
        if self._since_sweep >= self._sweep_every:
            self._sweep(now)
        return refusal

    def _sweep(self, now: float) -> None:
        # A TAT in the past is a full bucket: forgetting it changes no decision.
        self._since_sweep = 0
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
