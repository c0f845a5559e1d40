"""Balances moved in batches: what a ledger write changes on account and key rows, applied in
one statement per table with rows locked in id order (replicas writing at once never deadlock).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.store.models import Account, ApiKey

# Core tables for executemany writes (the ORM would update row by row).
_ACCOUNTS = cast(Table, Account.__table__)
_KEYS = cast(Table, ApiKey.__table__)


def new_id() -> str:
    """A fresh id for a ledger row (a transaction, a hold)."""
    return secrets.token_hex(16)


@dataclass
class BalanceChanges:
    """A batch's rows to write, and what it moves on each account and limited key."""

    transactions: list[dict[str, object]] = field(default_factory=list)
    entries: list[dict[str, object]] = field(default_factory=list)
    balance_deltas: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    reserved_release: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    key_spent: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    key_release: dict[int, int] = field(default_factory=lambda: defaultdict(int))


async def apply_balance_changes(session: AsyncSession, changes: BalanceChanges) -> None:
    """Move the balances, reserved amounts and keys' spending of ``changes``."""
    accounts = sorted(set(changes.balance_deltas) | set(changes.reserved_release))
    if accounts:
        # Sorted ids: replicas settling concurrently lock rows in one order, never deadlock.
        table = _ACCOUNTS
        await session.execute(
            update(table).where(table.c.id == bindparam("b_account"))
            .values(balance=table.c.balance + bindparam("b_delta"),
                    reserved=table.c.reserved - bindparam("b_release")),
            [{"b_account": a, "b_delta": changes.balance_deltas.get(a, 0),
              "b_release": changes.reserved_release.get(a, 0)} for a in accounts],
        )
    keys = sorted(set(changes.key_spent) | set(changes.key_release))
    if keys:
        keys_table = _KEYS
        await session.execute(
            update(keys_table).where(keys_table.c.id == bindparam("b_key"))
            .values(spent=keys_table.c.spent + bindparam("b_spent"),
                    reserved=keys_table.c.reserved - bindparam("b_release")),
            [{"b_key": k, "b_spent": changes.key_spent.get(k, 0),
              "b_release": changes.key_release.get(k, 0)} for k in keys],
        )


async def release_hold_rows(
    session: AsyncSession, holds: list[tuple[int, int | None, int]]
) -> None:
    """Give the reserved balance of deleted hold rows (account, limited key, amount) back."""
    changes = BalanceChanges()
    for account_id, key_id, amount in holds:
        changes.reserved_release[account_id] += amount
        if key_id is not None:
            changes.key_release[key_id] += amount
    await apply_balance_changes(session, changes)


async def lock_accounts(session: AsyncSession, account_ids: set[int]) -> None:
    """Lock every account a transaction will write, up front and in id order: transactions on
    several replicas then never hold one account while waiting for another's (no deadlock)."""
    await session.execute(
        select(Account.id).where(Account.id.in_(sorted(account_ids)))
        .order_by(Account.id).with_for_update()
    )
