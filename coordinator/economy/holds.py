"""What a hold grants and what a settlement may take, as pure functions: no database, no clock.

A call's charge never exceeds its hold. While the hold stands, the hold's reserved amount is
the account's guarantee; once it has expired (and been released), the account may have spent
that room on other calls, so the charge is also capped at what is still spendable. Together
these keep every account's balance at or above what it has reserved, hence never negative.
"""

from __future__ import annotations


def hold_grant(spendable: int, amount: int, line_holds: int) -> int | None:
    """What to reserve for a hold of ``amount``: ``amount`` itself, or for a credit line
    (``line_holds`` > 1) up to that many calls' worth but at most half of what is spendable
    (at least the call's own hold), so other replicas can open theirs; None if the account
    cannot cover ``amount``."""
    if amount < 0 or spendable < amount:
        return None
    if line_holds > 1:
        return max(amount, min(amount * line_holds, spendable // 2))
    return amount


def call_charge(cost: int, hold_amount: int, *, spendable_after_expiry: int | None) -> int:
    """What a call's consumer pays: its ``cost`` capped at its hold and, when the hold had
    expired before the call settled (``spendable_after_expiry`` is then what the account can
    still spend), at that too."""
    charge = max(0, min(cost, hold_amount))
    if spendable_after_expiry is not None:
        charge = min(charge, max(0, spendable_after_expiry))
    return charge
