"""A node's health: outcomes over a rolling window, kept in hourly buckets.

The buckets are plain data (:class:`HealthBucket`) so the store can save them and rebuild the
window with :meth:`HealthWindow.from_buckets`. Times are wall-clock epoch seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from coordinator.routing.outcome import Outcome
from coordinator.routing.rules import SECONDS_PER_DAY

BUCKET_S = 3600
"""Width of one health bucket in seconds."""


@dataclass(frozen=True, slots=True)
class HealthBucket:
    """Counts for one bucket starting at ``start`` (epoch seconds, a multiple of BUCKET_S)."""

    start: int
    successes: int = 0
    failures: int = 0
    neutrals: int = 0
    probe_successes: int = 0
    probe_failures: int = 0
    online_s: float = 0.0


class _Counts:
    __slots__ = (
        "failures",
        "neutrals",
        "online_s",
        "probe_failures",
        "probe_successes",
        "start",
        "successes",
    )

    def __init__(self, bucket: HealthBucket) -> None:
        self.start = bucket.start
        self.successes = bucket.successes
        self.failures = bucket.failures
        self.neutrals = bucket.neutrals
        self.probe_successes = bucket.probe_successes
        self.probe_failures = bucket.probe_failures
        self.online_s = bucket.online_s

    def frozen(self) -> HealthBucket:
        return HealthBucket(
            start=self.start,
            successes=self.successes,
            failures=self.failures,
            neutrals=self.neutrals,
            probe_successes=self.probe_successes,
            probe_failures=self.probe_failures,
            online_s=self.online_s,
        )


def bucket_start(wall_now: float) -> int:
    """The start of the bucket holding ``wall_now``."""
    return int(wall_now // BUCKET_S) * BUCKET_S


def laplace_score(successes: int, failures: int) -> float:
    """The Laplace-smoothed success ratio: 0.5 with no history, always inside (0, 1)."""
    return (successes + 1) / (successes + failures + 2)


class HealthWindow:
    """Outcomes of the last ``window_days`` days, oldest bucket first."""

    __slots__ = ("_buckets", "_failures", "_successes", "_window_s")

    def __init__(self, window_days: int) -> None:
        self._window_s = int(window_days * SECONDS_PER_DAY)
        self._buckets: deque[_Counts] = deque()
        # Running totals so the score costs O(1); they include probe outcomes.
        self._successes = 0
        self._failures = 0

    @classmethod
    def from_buckets(cls, buckets: Iterable[HealthBucket], *, window_days: int) -> HealthWindow:
        """Rebuild a window from saved buckets (in any order; equal starts are merged)."""
        window = cls(window_days)
        for bucket in sorted(buckets, key=lambda b: b.start):
            counts = window._bucket_at(bucket_start(bucket.start))
            if counts is None:
                continue
            counts.successes += bucket.successes
            counts.failures += bucket.failures
            counts.neutrals += bucket.neutrals
            counts.probe_successes += bucket.probe_successes
            counts.probe_failures += bucket.probe_failures
            counts.online_s += bucket.online_s
            window._successes += bucket.successes + bucket.probe_successes
            window._failures += bucket.failures + bucket.probe_failures
        return window

    def buckets(self, wall_now: float | None = None) -> tuple[HealthBucket, ...]:
        """The buckets as plain data, oldest first; expired ones dropped if ``wall_now`` given."""
        if wall_now is not None:
            self._expire(wall_now)
        return tuple(counts.frozen() for counts in self._buckets)

    def record(self, outcome: Outcome, wall_now: float, *, probe: bool = False) -> None:
        """Count one outcome; a probe's success or failure weighs the same as a job's."""
        self._expire(wall_now)
        counts = self._bucket_at(bucket_start(wall_now))
        if counts is None:
            return
        if outcome is Outcome.SUCCESS:
            self._successes += 1
            if probe:
                counts.probe_successes += 1
            else:
                counts.successes += 1
        elif outcome is Outcome.FAILURE:
            self._failures += 1
            if probe:
                counts.probe_failures += 1
            else:
                counts.failures += 1
        else:
            counts.neutrals += 1

    def add_online(self, seconds: float, wall_now: float) -> None:
        """Credit ``seconds`` online to the bucket holding ``wall_now``; the score ignores it."""
        self._expire(wall_now)
        counts = self._bucket_at(bucket_start(wall_now))
        if counts is not None:
            counts.online_s += seconds

    def score(self, wall_now: float) -> float:
        """Health in [0, 1]: the smoothed success ratio over the window; neutrals don't count."""
        self._expire(wall_now)
        return laplace_score(self._successes, self._failures)

    def _expire(self, wall_now: float) -> None:
        oldest_kept = bucket_start(wall_now) - self._window_s + BUCKET_S
        while self._buckets and self._buckets[0].start < oldest_kept:
            gone = self._buckets.popleft()
            self._successes -= gone.successes + gone.probe_successes
            self._failures -= gone.failures + gone.probe_failures

    def _bucket_at(self, start: int) -> _Counts | None:
        """The bucket starting at ``start``, created if needed; ``None`` if already expired."""
        buckets = self._buckets
        if buckets and start <= buckets[-1].start - self._window_s:
            return None
        if not buckets or buckets[-1].start < start:
            buckets.append(_Counts(HealthBucket(start=start)))
            return buckets[-1]
        # A late report for an earlier hour: rare, and the window is at most a few hundred long.
        for index in range(len(buckets) - 1, -1, -1):
            found = buckets[index]
            if found.start == start:
                return found
            if found.start < start:
                buckets.insert(index + 1, _Counts(HealthBucket(start=start)))
                return buckets[index + 1]
        buckets.appendleft(_Counts(HealthBucket(start=start)))
        return buckets[0]
