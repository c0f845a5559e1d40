"""The forgiving breaker, state by state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.routing import Breaker, BreakerState, Outcome, RoutingConstants

CONSTANTS = RoutingConstants()
S, F, N = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL


def parked_breaker(at: float = 100.0) -> Breaker:
    breaker = Breaker(CONSTANTS)
    for offset in (0.0, 1.0, 2.0):
        breaker.record(F, at + offset)
    assert breaker.state(at + 2.0) is BreakerState.PARKED
    return breaker


def test_starts_closed_without_cap() -> None:
    breaker = Breaker(CONSTANTS)
    assert breaker.state(0.0) is BreakerState.CLOSED
    assert breaker.park_until is None
    assert breaker.slot_cap(0.0) is None
    assert breaker.allows(0.0, in_flight=1000)


def test_three_failures_within_60s_park_for_15s() -> None:
    breaker = Breaker(CONSTANTS)
    breaker.record(F, 0.0)
    breaker.record(F, 30.0)
    assert breaker.state(30.0) is BreakerState.CLOSED
    breaker.record(F, 60.0)
    assert breaker.state(60.0) is BreakerState.PARKED
    assert breaker.park_until == 75.0
    assert breaker.state(74.999) is BreakerState.PARKED
    assert not breaker.allows(74.999, in_flight=0)
    assert breaker.state(75.0) is BreakerState.HALF_OPEN


def test_two_failures_then_a_61s_gap_do_not_park() -> None:
    breaker = Breaker(CONSTANTS)
    breaker.record(F, 0.0)
    breaker.record(F, 1.0)
    breaker.record(F, 62.0)
    assert breaker.state(62.0) is BreakerState.CLOSED
    breaker.record(F, 63.0)
    assert breaker.state(63.0) is BreakerState.CLOSED
    breaker.record(F, 64.0)
    assert breaker.state(64.0) is BreakerState.PARKED


def test_successes_between_failures_do_not_reset_the_count() -> None:
    breaker = Breaker(CONSTANTS)
    for when, outcome in [(0.0, F), (1.0, S), (2.0, F), (3.0, S), (4.0, F)]:
        breaker.record(outcome, when)
    assert breaker.state(4.0) is BreakerState.PARKED


def test_half_open_lets_exactly_one_through() -> None:
    breaker = parked_breaker()
    after = breaker.park_until
    assert after is not None
    assert breaker.slot_cap(after) == 1
    assert breaker.allows(after, in_flight=0)
    assert not breaker.allows(after, in_flight=1)
    assert not breaker.allows(after + 1000.0, in_flight=1)


def test_trial_success_closes_fully_and_forgets_failures() -> None:
    breaker = parked_breaker()
    after = breaker.park_until
    assert after is not None
    breaker.record(S, after + 1.0)
    assert breaker.state(after + 1.0) is BreakerState.CLOSED
    assert breaker.park_until is None
    breaker.record(F, after + 2.0)
    breaker.record(F, after + 3.0)
    assert breaker.state(after + 3.0) is BreakerState.CLOSED


def test_trial_failure_parks_again_for_15s() -> None:
    breaker = parked_breaker()
    after = breaker.park_until
    assert after is not None
    breaker.record(F, after + 2.0)
    assert breaker.state(after + 2.0) is BreakerState.PARKED
    assert breaker.park_until == after + 2.0 + 15.0


def test_neutral_in_half_open_ends_the_trial_without_verdict() -> None:
    breaker = parked_breaker()
    after = breaker.park_until
    assert after is not None
    breaker.record(N, after + 1.0)
    assert breaker.state(after + 1.0) is BreakerState.HALF_OPEN
    assert breaker.park_until == after


def test_outcomes_while_parked_are_ignored() -> None:
    breaker = parked_breaker(at=100.0)
    breaker.record(S, 103.0)
    breaker.record(F, 104.0)
    assert breaker.state(104.0) is BreakerState.PARKED
    assert breaker.park_until == 117.0


def test_neutrals_never_count() -> None:
    breaker = Breaker(CONSTANTS)
    for second in range(100):
        breaker.record(N, float(second))
    assert breaker.state(100.0) is BreakerState.CLOSED


def test_window_and_counts_follow_constants() -> None:
    constants = RoutingConstants(breaker_failures=2, breaker_window_s=10.0, breaker_park_s=5.0)
    breaker = Breaker(constants)
    breaker.record(F, 0.0)
    breaker.record(F, 10.5)
    assert breaker.state(10.5) is BreakerState.CLOSED
    breaker.record(F, 11.0)
    assert breaker.park_until == 16.0


events = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=40.0), st.sampled_from([S, F, N])),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_neutrals_never_change_the_trajectory(history: list[tuple[float, Outcome]]) -> None:
    with_neutrals, without = Breaker(CONSTANTS), Breaker(CONSTANTS)
    now = 0.0
    for gap, outcome in history:
        now += gap
        with_neutrals.record(outcome, now)
        if outcome is not N:
            without.record(outcome, now)
        assert with_neutrals.state(now) is without.state(now)
        assert with_neutrals.park_until == without.park_until


class ReferenceBreaker:
    """The rules restated as plainly as possible: full failure history, scanned each time."""

    def __init__(self) -> None:
        self.failures: list[float] = []
        self.park_until: float | None = None

    def record(self, outcome: Outcome, now: float) -> None:
        if outcome is N:
            return
        if self.park_until is not None:
            if now < self.park_until:
                return
            if outcome is S:
                self.park_until, self.failures = None, []
            else:
                self.park_until, self.failures = now + 15.0, []
            return
        if outcome is F:
            self.failures.append(now)
            if len([t for t in self.failures if t >= now - 60.0]) >= 3:
                self.park_until, self.failures = now + 15.0, []


@settings(max_examples=200, deadline=None)
@given(events)
def test_matches_reference_on_random_histories(history: list[tuple[float, Outcome]]) -> None:
    breaker, reference = Breaker(CONSTANTS), ReferenceBreaker()
    now = 0.0
    for gap, outcome in history:
        now += gap
        breaker.record(outcome, now)
        reference.record(outcome, now)
        assert breaker.park_until == reference.park_until
