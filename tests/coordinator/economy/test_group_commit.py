"""The group-commit writer never freezes: a refused item is isolated and rejected while the rest
of its batch is written, trouble that passes is waited out, and nothing is tried forever."""

from __future__ import annotations

import asyncio

from coordinator.economy.group_commit import GroupCommit


class Refused(ValueError):
    """What a database says of a value it cannot store."""


class Unreachable(ConnectionError):
    """What a database that is briefly away says."""


async def test_a_refused_item_is_rejected_alone_and_the_rest_of_its_batch_commits() -> None:
    written: list[int] = []
    rejected: list[tuple[int, Exception]] = []
    attempts: dict[int, int] = {}

    async def write(batch: list[int]) -> None:
        for item in batch:
            attempts[item] = attempts.get(item, 0) + 1
        if any(item % 10 == 7 for item in batch):  # 7 and 17 are poison
            raise Refused("value out of range")
        written.extend(batch)

    commit: GroupCommit[int] = GroupCommit(
        write, max_batch=32, linger_s=0.0, retry=lambda item: True, urgent=lambda item: False,
        reject=lambda item, error: rejected.append((item, error)),
        transient=lambda error: isinstance(error, ConnectionError),
    )
    for item in range(20):
        commit.put(item)
    async with asyncio.timeout(2):
        await commit.flush()
    assert sorted(written) == [n for n in range(20) if n % 10 != 7]
    assert [item for item, _ in rejected] == [7, 17]
    assert all(isinstance(error, Refused) for _, error in rejected)
    assert commit.rejected == 2
    assert attempts[7] <= 6  # isolated by halving, not retried over and over
    commit.put(100)  # and the writer goes on
    async with asyncio.timeout(2):
        await commit.flush()
    assert written[-1] == 100
    await commit.close(1.0)


async def test_passing_trouble_is_waited_out_and_lasting_trouble_is_given_up_on() -> None:
    down_for = 3
    written: list[str] = []
    rejected: list[str] = []

    async def write(batch: list[str]) -> None:
        nonlocal down_for
        if "cursed" in batch:
            raise Unreachable("always, for this one")
        if down_for:
            down_for -= 1
            raise Unreachable("connection refused")
        written.extend(batch)

    commit: GroupCommit[str] = GroupCommit(
        write, max_batch=8, linger_s=0.0, retry=lambda item: item != "hold",
        urgent=lambda item: False, reject=lambda item, error: rejected.append(item),
        transient=lambda error: isinstance(error, ConnectionError), max_attempts=4,
    )
    for item in ("a", "hold", "b"):
        commit.put(item)
    async with asyncio.timeout(5):
        await commit.flush()
    assert written == ["a", "b"]  # written once the database was back, in order
    assert rejected == ["hold"]  # whose caller cannot wait: answered at the first failure
    commit.put("cursed")
    commit.put("c")
    async with asyncio.timeout(10):
        await commit.flush()
    assert "c" in written and rejected == ["hold", "cursed"]
    await commit.close(1.0)
