"""Credit lines: holds granted from memory, backed by one database hold per account.

Writing a hold to the database before a call's first byte costs a transaction on the consumer's
time to first token. Instead, a replica reserves a *line* for an account in the database (one
hold row, ``amount`` of the account's spendable credit, so no other replica or writer can spend
it) and lends each call's hold from it in memory. A settled call repays its loan and consumes its
cost from the line (the row shrinks by the cost in the settlement's transaction); an emptied line
is released after a short idle time, or at once when it has been retired.

Pure bookkeeping: the caller supplies ``now`` and writes what it is told to the database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class CreditLine:
    hold_id: str  # the database hold row backing the line
    account_id: int
    amount: int  # still reserved in the database for this line
    opened_at: float
    lent: int = 0  # lent to calls in flight
    retired: bool = False  # lends no more; released once repaid

    @property
    def spare(self) -> int:
        return self.amount - self.lent


class CreditLines:
    """This replica's open lines: at most one current line per account, plus retired ones that
    calls are still repaying."""

    def __init__(self, *, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        self._current: dict[int, CreditLine] = {}
        self._by_hold: dict[str, CreditLine] = {}
        self._releasable: list[CreditLine] = []

    def __len__(self) -> int:
        return len(self._by_hold)

    def __contains__(self, hold_id: str) -> bool:
        return hold_id in self._by_hold

    def borrow(self, account_id: int, amount: int, now: float) -> str | None:
        """Lend ``amount`` from the account's current line; None if it cannot (then open one)."""
        line = self._current.get(account_id)
        if line is None or line.spare < amount:
            return None
        if now - line.opened_at > self._max_age_s:  # its database hold would soon expire
            self._retire(line)
            return None
        line.lent += amount
        return line.hold_id

    def open(self, account_id: int, hold_id: str, amount: int, lent: int, now: float) -> None:
        """Record a line the database granted, ``lent`` of it already lent to the caller that
        asked; it becomes the account's current line (the one before is retired)."""
        line = CreditLine(hold_id, account_id, amount, opened_at=now, lent=lent)
        previous = self._current.get(account_id)
        if previous is not None:
            self._retire(previous)
        self._current[account_id] = line
        self._by_hold[hold_id] = line

    def repay(self, hold_id: str, lent: int, cost: int) -> bool:
        """A call on the line settled: its loan returns and its cost leaves the line. True if
        that left a current line unused (release it after an idle time, if it stays unused)."""
        line = self._by_hold[hold_id]
        line.lent -= lent
        line.amount -= min(cost, lent)
        if line.lent:
            return False
        if line.retired:
            self._forget(line)
            return False
        return True

    def releasable(self) -> list[CreditLine]:
        """The retired lines no call uses any more, forgotten here: release them."""
        lines, self._releasable = self._releasable, []
        return lines

    def take_unused(self, hold_id: str | None = None) -> list[CreditLine]:
        """Forget the line ``hold_id`` (or every line) if unused: release them."""
        chosen = list(self._by_hold.values()) if hold_id is None else (
            [self._by_hold[hold_id]] if hold_id in self._by_hold else []
        )
        unused = [line for line in chosen if line.lent == 0]
        for line in unused:
            self._forget(line)
        return self.releasable() + unused if hold_id is None else unused

    def _retire(self, line: CreditLine) -> None:
        line.retired = True
        if self._current.get(line.account_id) is line:
            del self._current[line.account_id]
        if line.lent == 0:
            self._forget(line)

    def _forget(self, line: CreditLine) -> None:
        del self._by_hold[line.hold_id]
        if self._current.get(line.account_id) is line:
            del self._current[line.account_id]
        if line.retired:
            self._releasable.append(line)
