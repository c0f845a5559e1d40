"""The forgiving per-node circuit breaker.

``breaker_failures`` failures within ``breaker_window_s`` park a node for ``breaker_park_s``.
When the park ends the breaker is half-open: one trial job at a time may run. The trial's
success closes the breaker and forgets past failures; its failure parks the node again; a
neutral outcome ends the trial with no verdict, so the next job is a trial too. Neutral outcomes
never move the breaker. Times are monotonic seconds.
"""

from __future__ import annotations

import enum
from collections import deque

from coordinator.routing.constants import RoutingConstants
from coordinator.routing.outcome import Outcome


class BreakerState(enum.Enum):
    CLOSED = "closed"
    PARKED = "parked"
    HALF_OPEN = "half_open"


class Breaker:
    """One node's breaker; the park ending is noticed lazily, from the ``now`` passed in."""

    __slots__ = ("_constants", "_failures", "_park_until")

    def __init__(self, constants: RoutingConstants) -> None:
        self._constants = constants
        self._failures: deque[float] = deque()
        self._park_until: float | None = None

    @property
    def park_until(self) -> float | None:
        """When the current or last park ends; ``None`` while closed."""
        return self._park_until

    def state(self, now: float) -> BreakerState:
        if self._park_until is None:
            return BreakerState.CLOSED
        if now < self._park_until:
            return BreakerState.PARKED
        return BreakerState.HALF_OPEN

    def slot_cap(self, now: float) -> int | None:
        """The most jobs the breaker lets run at once: none parked, one half-open, else no cap."""
        state = self.state(now)
        if state is BreakerState.PARKED:
            return 0
        if state is BreakerState.HALF_OPEN:
            return 1
        return None

    def allows(self, now: float, in_flight: int) -> bool:
        """Whether one more job may start while ``in_flight`` jobs are running."""
        cap = self.slot_cap(now)
        return cap is None or in_flight < cap

    def record(self, outcome: Outcome, now: float) -> None:
        """Apply a finished job's outcome.

        Outcomes that arrive while parked come from jobs started before the park; the node has
        already been judged on those failures, so they are ignored.
        """
        if outcome is Outcome.NEUTRAL:
            return
        state = self.state(now)
        if state is BreakerState.PARKED:
            return
        if state is BreakerState.HALF_OPEN:
            if outcome is Outcome.SUCCESS:
                self._park_until = None
                self._failures.clear()
            else:
                self._park(now)
            return
        if outcome is Outcome.FAILURE:
            self._failures.append(now)
            horizon = now - self._constants.breaker_window_s
            while self._failures and self._failures[0] < horizon:
                self._failures.popleft()
            if len(self._failures) >= self._constants.breaker_failures:
                self._park(now)

    def park_until_time(self, until: float) -> None:
        """Park until ``until`` (a park carried over from another replica), unless parked longer."""
        if self._park_until is None or self._park_until < until:
            self._park_until = until
            self._failures.clear()

    def _park(self, now: float) -> None:
        self._park_until = now + self._constants.breaker_park_s
        self._failures.clear()
