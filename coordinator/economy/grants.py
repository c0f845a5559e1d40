"""Granting credits into an account, once per reference: starter credits, top-ups, grants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.economy.ledger import SystemBooks, record
from coordinator.economy.postings import grant_postings
from coordinator.store.models import LedgerTransaction


async def grant(
    session: AsyncSession, books: SystemBooks, account_id: int, amount: int, now: datetime, *,
    reference: str, kind: str = "grant", memo: str | None = None,
) -> bool:
    """Issue ``amount`` micro-credits to the account once per ``reference``; False if done."""
    if amount <= 0:
        return False
    exists = await session.scalar(
        select(LedgerTransaction.id).where(LedgerTransaction.reference == reference)
    )
    if exists is not None:
        return False
    issuer = books.usdc if kind == "topup" else books.issuance
    await record(session, kind, grant_postings(issuer, account_id, amount, kind), now,
                 reference=reference, memo=memo)
    return True
