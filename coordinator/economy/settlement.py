"""Settling ended calls in one transaction: each call's hold released (its own row, or its cost
from the credit line it was lent from), its postings recorded, the balances moved.

The postings themselves are :func:`coordinator.economy.postings.call_postings`; the charge of a
call whose hold expired meanwhile is :func:`coordinator.economy.holds.call_charge`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.economy.balances import BalanceChanges, apply_balance_changes, new_id
from coordinator.economy.holds import call_charge
from coordinator.economy.postings import Books, ServingNode, call_postings
from coordinator.settings.economy import EconomySettings
from coordinator.store.models import Account, Hold, LedgerEntry, LedgerTransaction

log = logging.getLogger(__name__)

# Core tables for executemany writes (the ORM would insert row by row to fetch ids).
_HOLDS = cast(Table, Hold.__table__)
_TRANSACTIONS = cast(Table, LedgerTransaction.__table__)
_ENTRIES = cast(Table, LedgerEntry.__table__)


@dataclass(frozen=True, slots=True)
class CallSettlement:
    """Everything needed to settle one call once it has ended, however it ended."""

    reference: str
    account_id: int
    api_key_id: int | None
    hold_id: str
    hold_amount: int
    cost: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    nodes: tuple[ServingNode, ...]
    bounty_multiplier: float = 1.0


@dataclass(frozen=True, slots=True)
class LineSettlement:
    """A call whose hold was lent from a credit line: the line's row shrinks by its cost."""

    call: CallSettlement


async def settle_calls(
    session: AsyncSession, settlements: list[CallSettlement | LineSettlement], books: Books,
    settings: EconomySettings, now: datetime,
) -> None:
    """Settle ``settlements`` inside the caller's transaction (its accounts locked already)."""
    changes = BalanceChanges()
    pool_balance = await session.scalar(
        select(Account.balance).where(Account.id == books.bounty_pool).with_for_update()
    ) or 0
    own = [item for item in settlements if isinstance(item, CallSettlement)]
    on_lines = [item.call for item in settlements if isinstance(item, LineSettlement)]
    # What each call releases from the reserved balance: its own hold row, or its cost
    # from its line's row. Nothing if the row is gone (expired and released already).
    releases: dict[str, tuple[int, int | None]] = {}
    if own:
        releases.update({
            row[0]: (row[1], row[2]) for row in (await session.execute(
                delete(Hold).where(Hold.id.in_([item.hold_id for item in own]))
                .returning(Hold.id, Hold.amount, Hold.api_key_id)
            )).all()
        })
    line_release: dict[str, int] = defaultdict(int)
    if on_lines:
        lines = set((await session.scalars(
            select(Hold.id).where(Hold.id.in_({item.hold_id for item in on_lines}))
        )).all())
        for item in on_lines:
            if item.hold_id in lines:
                line_release[item.hold_id] += min(item.cost, item.hold_amount)
        if line_release:
            await session.execute(
                update(_HOLDS).where(_HOLDS.c.id == bindparam("b_hold"))
                .values(amount=_HOLDS.c.amount - bindparam("b_consumed")),
                [{"b_hold": h, "b_consumed": c} for h, c in sorted(line_release.items())],
            )
    # Calls whose hold expired meanwhile are charged no more than their account can still
    # spend (its reserved room went back to it, perhaps to other calls).
    expired = {item.account_id for item in own if item.hold_id not in releases}
    expired.update(item.account_id for item in on_lines if item.hold_id not in line_release)
    spendable: dict[int, int] = {}
    if expired:
        spendable = {
            row[0]: row[1] - row[2] for row in (await session.execute(
                select(Account.id, Account.balance, Account.reserved)
                .where(Account.id.in_(sorted(expired)))
            )).all()
        }
    for item in own:
        pool_balance = _post_call(
            changes, item, now, pool_balance, releases.get(item.hold_id), spendable, books,
            settings,
        )
    for item in on_lines:
        found = item.hold_id in line_release
        pool_balance = _post_call(
            changes, item, now, pool_balance,
            (min(item.cost, item.hold_amount), None) if found else None, spendable, books,
            settings,
        )
    await session.execute(insert(_TRANSACTIONS), changes.transactions)
    if changes.entries:
        await session.execute(insert(_ENTRIES), changes.entries)
    await apply_balance_changes(session, changes)


def _post_call(
    changes: BalanceChanges, item: CallSettlement, now: datetime, pool_balance: int,
    release: tuple[int, int | None] | None, spendable: dict[int, int], books: Books,
    settings: EconomySettings,
) -> int:
    """Post one call; ``release`` is what it frees from the reserved balance (and from which
    limited key), None if its hold had expired (``spendable``: what its account could
    spend before this batch)."""
    account = item.account_id
    if release is None:
        # The hold expired and was released already; still charge what was delivered,
        # but never more than the account can cover now.
        log.warning("settling %s after its hold expired", item.reference)
        room = (spendable.get(account, 0) + changes.balance_deltas.get(account, 0)
                + changes.reserved_release.get(account, 0))
        cost = call_charge(item.cost, item.hold_amount, spendable_after_expiry=room)
    else:
        cost = call_charge(item.cost, item.hold_amount, spendable_after_expiry=None)
        amount, limited_key = release
        changes.reserved_release[item.account_id] += amount
        if limited_key is not None:
            changes.key_release[limited_key] += amount
    postings = call_postings(
        item.account_id, cost, item.nodes, books, settings,
        bounty_multiplier=item.bounty_multiplier, pool_balance=pool_balance,
    )
    transaction_id = new_id()
    changes.transactions.append({
        "id": transaction_id, "kind": "call", "reference": item.reference,
        "created_at": now, "api_key_id": item.api_key_id, "model": item.model,
        "prompt_tokens": item.prompt_tokens, "completion_tokens": item.completion_tokens,
        "memo": None,
    })
    for p in postings:
        changes.entries.append({
            "transaction_id": transaction_id, "account_id": p.account_id,
            "amount": p.amount, "kind": p.kind, "node_id": p.node_id,
        })
        changes.balance_deltas[p.account_id] += p.amount
        if p.account_id == books.bounty_pool:
            pool_balance += p.amount
    if item.api_key_id is not None:
        changes.key_spent[item.api_key_id] += cost
    return pool_balance
