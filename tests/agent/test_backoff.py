"""Reconnect delays: jittered first retry, capped exponential growth, seeded."""

from __future__ import annotations

import random
from itertools import islice, pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.backoff import backoff

FACTOR = 1.618


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**32),
    initial_s=st.floats(0.01, 5.0),
    cap_ratio=st.floats(1.0, 100.0),
)
def test_delays_start_jittered_then_grow_to_the_cap(
    seed: int, initial_s: float, cap_ratio: float
) -> None:
    max_s = initial_s * cap_ratio
    delays = list(islice(backoff(initial_s, max_s, FACTOR, random.Random(seed)), 40))
    assert 0 <= delays[0] <= initial_s
    nominal = initial_s
    for before, after in pairwise(delays[1:]):
        assert 0.8 * min(nominal, max_s) <= before <= min(nominal, max_s)
        if nominal * FACTOR <= max_s:
            # Jitter (at most 20%) never undoes a 1.618x step, so growth is strict.
            assert after > before
        nominal *= FACTOR
    assert all(delay <= max_s for delay in delays)
    assert delays[-1] >= 0.8 * max_s


def test_the_first_retries_are_spread_over_the_initial_delay() -> None:
    rng = random.Random(7)
    firsts = [next(backoff(1.0, 30.0, rng=rng)) for _ in range(200)]
    assert min(firsts) < 0.1
    assert max(firsts) > 0.9


def test_the_same_seed_gives_the_same_delays() -> None:
    def run(seed: int) -> list[float]:
        return list(islice(backoff(0.5, 10.0, rng=random.Random(seed)), 12))

    assert run(3) == run(3)
    assert run(3) != run(4)
