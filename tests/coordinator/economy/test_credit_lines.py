"""The credit-line bookkeeping on its own: lending, repaying, retiring and what to release."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.economy.credit_lines import CreditLines


def test_lends_only_what_the_current_line_has_spare() -> None:
    lines = CreditLines(max_age_s=100)
    assert lines.borrow(1, 10, now=0) is None  # no line yet
    lines.open(1, "h1", amount=30, lent=10, now=0)
    assert lines.borrow(1, 15, now=1) == "h1"
    assert lines.borrow(1, 6, now=1) is None  # 5 spare
    assert lines.borrow(2, 1, now=1) is None  # lines are per account
    assert "h1" in lines and len(lines) == 1


def test_an_emptied_line_is_released_when_idle_and_a_retired_one_at_once() -> None:
    lines = CreditLines(max_age_s=100)
    lines.open(1, "old", amount=20, lent=10, now=0)
    assert lines.repay("old", lent=10, cost=4)  # unused now: release after an idle time
    assert lines.borrow(1, 16, now=1) == "old"  # 16 left after the cost
    lines.open(1, "new", amount=50, lent=20, now=2)  # replaces "old", still lent out
    assert lines.releasable() == []
    assert not lines.repay("old", lent=16, cost=16)  # retired: released at once
    [released] = lines.releasable()
    assert (released.hold_id, released.amount) == ("old", 0)
    assert "old" not in lines and lines.borrow(1, 30, now=3) == "new"


def test_an_old_line_stops_lending_so_its_hold_outlives_its_calls() -> None:
    lines = CreditLines(max_age_s=10)
    lines.open(1, "h", amount=100, lent=0, now=0)
    assert lines.borrow(1, 1, now=11) is None
    assert [line.hold_id for line in lines.releasable()] == ["h"]  # unused: released at once


def test_take_unused_leaves_lines_in_use() -> None:
    lines = CreditLines(max_age_s=100)
    lines.open(1, "busy", amount=10, lent=5, now=0)
    lines.open(2, "idle", amount=10, lent=5, now=0)
    lines.repay("idle", lent=5, cost=1)
    assert [line.hold_id for line in lines.take_unused()] == ["idle"]
    assert lines.take_unused("busy") == [] and "busy" in lines


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 40), st.integers(0, 40)), max_size=60))
def test_a_line_never_lends_more_than_it_holds(steps: list[tuple[bool, int, int]]) -> None:
    lines = CreditLines(max_age_s=1e9)
    lines.open(1, "h", amount=200, lent=0, now=0)
    loans: list[int] = []
    for borrow, amount, cost in steps:
        if borrow:
            if lines.borrow(1, amount, now=0) == "h":
                loans.append(amount)
        elif loans:
            lent = loans.pop()
            lines.repay("h", lent=lent, cost=cost)
        line = lines._by_hold.get("h")
        if line is not None:
            assert 0 <= line.lent <= line.amount
            assert line.lent == sum(loans)
