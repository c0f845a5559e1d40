"""Opening accounts, with their one-time starter credits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.economy.grants import grant
from coordinator.economy.ledger import SystemBooks
from coordinator.store.models import Account


async def open_account(
    session: AsyncSession, books: SystemBooks, now: datetime, starter_credits: int, *,
    wallet: str | None = None, label: str | None = None, oidc_subject: str | None = None,
    email: str | None = None, starter_allowed: Callable[[], Awaitable[bool]] | None = None,
) -> Account:
    """The account for this wallet / label / OIDC subject, opened (with starter credits) if new.

    Runs in the caller's transaction; the starter grant's unique reference makes it once-only
    even if two requests race to open the same account. ``starter_allowed`` is asked only when
    the account is new (so signing in again costs the network nothing): False opens it with no
    starter credits (the per-network daily allowance is spent).
    """
    account = await find_account(session, wallet=wallet, label=label, oidc_subject=oidc_subject)
    if account is not None:
        return account
    account = Account(kind="user", wallet=wallet, label=label, oidc_subject=oidc_subject,
                      email=email, created_at=now, balance=0, reserved=0)
    try:
        async with session.begin_nested():
            session.add(account)
            await session.flush()
    except IntegrityError:
        found = await find_account(session, wallet=wallet, label=label, oidc_subject=oidc_subject)
        assert found is not None
        return found
    if starter_allowed is not None and not await starter_allowed():
        return account
    await grant(session, books, account.id, starter_credits, now,
                reference=f"starter:{account.id}", memo="starter credits")
    return account


async def find_account(
    session: AsyncSession, *, wallet: str | None = None, label: str | None = None,
    oidc_subject: str | None = None,
) -> Account | None:
    if wallet is not None:
        return await session.scalar(select(Account).where(Account.wallet == wallet))
    if label is not None:
        return await session.scalar(select(Account).where(Account.label == label))
    if oidc_subject is not None:
        return await session.scalar(select(Account).where(Account.oidc_subject == oidc_subject))
    raise ValueError("an account is found by wallet, label or OIDC subject")


async def node_earnings_account(session: AsyncSession, node_id: str, now: datetime) -> int:
    """The account that collects a node's pay until an operator claims the node."""
    label = f"node:{node_id}"[:64]
    account_id = await session.scalar(select(Account.id).where(Account.label == label))
    if account_id is None:
        account = Account(kind="node", label=label, created_at=now, balance=0, reserved=0)
        session.add(account)
        await session.flush()
        account_id = account.id
    return account_id
