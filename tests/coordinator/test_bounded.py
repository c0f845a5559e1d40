"""The bounded LRU mapping: never more than its bound, and what was used last is what survives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.bounded import BoundedLRU

KEYS = st.integers(0, 20)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, st.integers()),
        st.tuples(st.just("get"), KEYS, st.just(0)),
        st.tuples(st.just("pop"), KEYS, st.just(0)),
    ),
    max_size=200,
)


@given(max_size=st.integers(1, 8), ops=OPS)
def test_agrees_with_a_recency_list_and_never_exceeds_its_bound(
    max_size: int, ops: list[tuple[str, int, int]]
) -> None:
    lru: BoundedLRU[int, int] = BoundedLRU(max_size)
    recency: list[int] = []  # least recently used first
    values: dict[int, int] = {}
    for op, key, value in ops:
        if op == "set":
            lru[key] = value
            values[key] = value
            recency = [k for k in recency if k != key] + [key]
            for evicted in recency[:-max_size]:
                del values[evicted]
            recency = recency[-max_size:]
        elif op == "get":
            assert lru.get(key) == values.get(key)
            if key in values:
                recency = [k for k in recency if k != key] + [key]
        else:
            assert lru.pop(key, None) == values.pop(key, None)
            recency = [k for k in recency if k != key]
        assert len(lru) <= max_size
        assert lru.keys() == recency
    assert {key: lru.get(key) for key in recency} == values


@given(max_size=st.integers(1, 8), keys=st.lists(KEYS, max_size=100))
def test_the_most_recently_stored_distinct_keys_survive(max_size: int, keys: list[int]) -> None:
    lru: BoundedLRU[int, int] = BoundedLRU(max_size)
    for position, key in enumerate(keys):
        lru[key] = position
    latest: list[int] = []
    for key in reversed(keys):
        if key not in latest:
            latest.append(key)
    survivors = latest[:max_size]
    assert set(lru) == set(survivors)
    assert all(lru[key] == len(keys) - 1 - keys[::-1].index(key) for key in survivors)


def test_reading_an_entry_saves_it_from_the_next_eviction_and_in_does_not() -> None:
    lru: BoundedLRU[str, int] = BoundedLRU(2)
    lru["a"], lru["b"] = 1, 2
    assert lru["a"] == 1
    lru["c"] = 3
    assert "b" not in lru
    assert "a" in lru  # checking membership does not refresh "a" ...
    lru["d"] = 4
    assert lru.keys() == ["c", "d"]  # ... so it is the one evicted next
    assert lru.get("a", -1) == -1
    with pytest.raises(KeyError):
        lru["a"]


def test_the_bound_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedLRU[str, int](0)
