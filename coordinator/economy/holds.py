"""What a hold grants and what a settlement may take, as pure functions: no database, no clock.

A call's charge never exceeds its hold. While the hold stands, the hold's reserved amount is
the account's guarantee; once it has expired (and been released), the account may have spent
that room on other calls, so the charge is also capped at what is still spendable. Together
these keep every account's balance at or above what it has reserved, hence never negative.

A batch of holds is decided in arrival order against the balances and keys' spend-limit room
read (and locked) for it (:func:`decide_holds`); the ledger writes what it grants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal


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


@dataclass(frozen=True, slots=True)
class HoldAsk:
    """One hold a batch asks for."""

    account_id: int
    amount: int
    api_key_id: int | None = None
    """Set only when the key has a spend limit: the hold must also fit the key's room."""
    line_holds: int = 0
    """For a credit line, how many calls' worth it may reserve (:func:`hold_grant`); else 0."""


@dataclass(frozen=True, slots=True)
class HoldDecision:
    """What one ask gets."""

    refusal: Literal["", "balance", "key_limit"] = ""
    """Why it is refused (the account cannot cover it; the key's limit is reached); "" if not."""
    granted: int = 0
    """What to reserve on the account, when not refused."""
    limited_key: int | None = None
    """The key whose spend-limit room the hold takes ``amount`` of, when not refused."""


def decide_holds(
    asks: Sequence[HoldAsk], spendable: Mapping[int, int], key_room: Mapping[int, int]
) -> list[HoldDecision]:
    """Decide each ask in order against what the ones granted before it took: ``spendable`` is
    each account's balance less reserved (an unknown account can cover nothing), ``key_room``
    each limited key's limit less spent and reserved (a key missing there is not limited)."""
    left = dict(spendable)
    room = dict(key_room)
    decisions: list[HoldDecision] = []
    for ask in asks:
        granted = hold_grant(left.get(ask.account_id, -1), ask.amount, ask.line_holds)
        if granted is None:
            decisions.append(HoldDecision(refusal="balance"))
            continue
        if ask.api_key_id is not None and room.get(ask.api_key_id, ask.amount) < ask.amount:
            decisions.append(HoldDecision(refusal="key_limit"))
            continue
        left[ask.account_id] -= granted
        limited_key = ask.api_key_id if ask.api_key_id in room else None
        if limited_key is not None:
            room[limited_key] -= ask.amount
        decisions.append(HoldDecision(granted=granted, limited_key=limited_key))
    return decisions
