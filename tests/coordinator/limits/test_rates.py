"""The pure limit rules: GCRA buckets and who the client is behind proxies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.limits.client_ip import client_ip, parse_networks
from coordinator.limits.rates import InMemoryRates, RetryAfter, gcra


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError


@given(
    limit=st.integers(1, 50),
    window=st.floats(1, 120),
    gaps=st.lists(st.floats(0, 10), min_size=1, max_size=200),
)
def test_gcra_never_admits_more_than_burst_plus_rate(
    limit: int, window: float, gaps: list[float]
) -> None:
    tat: float | None = None
    now = 0.0
    admitted = 0
    for gap in gaps:
        now += gap
        new, refusal = gcra(tat, now, 1, limit, window)
        if new is None:
            assert refusal is not None and refusal.seconds > 0
            # waiting exactly as long as told is enough
            again, _ = gcra(tat, now + refusal.seconds + 1e-6, 1, limit, window)
            assert again is not None
        else:
            assert refusal is None
            tat = new
            admitted += 1
    assert admitted <= limit + now * limit / window + 1e-6


def test_a_quiet_client_bursts_to_the_limit_then_waits_one_interval() -> None:
    tat: float | None = None
    for _ in range(5):
        tat, refusal = gcra(tat, 0.0, 1, 5, 60)
        assert refusal is None
    new, refusal = gcra(tat, 0.0, 1, 5, 60)
    assert new is None and refusal == RetryAfter(pytest.approx(12.0))
    assert refusal.header == 12
    assert gcra(tat, 12.0, 1, 5, 60)[1] is None


async def test_in_memory_buckets_are_separate_and_refill_with_the_clock() -> None:
    clock = FakeClock()
    rates = InMemoryRates(clock, sweep_every=3)
    assert await rates.hit("a", 1, 2, 10) is None
    assert await rates.hit("a", 1, 2, 10) is None
    refused = await rates.hit("a", 1, 2, 10)
    assert refused is not None and refused.header == 5
    assert await rates.hit("b", 1, 2, 10) is None  # another bucket
    clock.t += 5
    assert await rates.hit("a", 1, 2, 10) is None


PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # an untrusted peer's header is ignored
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the forged left part is not
        ("127.0.0.1", "198.51.100.7, 10.1.2.3", "198.51.100.7"),  # trusted hops are skipped
        ("127.0.0.1", "10.1.2.3", "10.1.2.3"),  # only trusted hops: the leftmost of them
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        (None, None, "unknown"),
    ],
)
def test_client_ip_believes_only_trusted_proxies(
    peer: str | None, header: str | None, expected: str
) -> None:
    assert client_ip(peer, header, PROXIES) == expected
