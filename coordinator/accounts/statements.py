"""What an account holder sees: balance and totals, ledger pages, usage, keys.

Reads only; every figure is a fold over the append-only ledger (or the balance kept with it).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.accounts.schemas import (
    AccountView,
    Amount,
    KeyUsage,
    KeyView,
    LedgerEntryView,
    LedgerPage,
    ModelUsage,
    UsageReport,
    UsageTotals,
)
from coordinator.errors import NotFound
from coordinator.store.models import Account, ApiKey, LedgerEntry, LedgerTransaction

if TYPE_CHECKING:
    from coordinator.economy.ledger import Ledger

EARNING_KINDS = ("provider_share", "bounty")
CHARGE = "charge"


async def account_view(session: AsyncSession, account_id: int) -> AccountView:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("this account no longer exists")
    earning = (LedgerEntry.kind.in_(EARNING_KINDS)) & (LedgerEntry.amount > 0)
    totals = (await session.execute(
        select(
            func.coalesce(func.sum(case((earning, LedgerEntry.amount), else_=0)), 0),
            func.coalesce(func.sum(case((LedgerEntry.kind == CHARGE, -LedgerEntry.amount),
                                        else_=0)), 0),
        ).where(LedgerEntry.account_id == account_id)
    )).one()
    return AccountView(
        id=account.id, wallet=account.wallet, email=account.email,
        oidc_linked=account.oidc_subject is not None, created_at=account.created_at,
        balance=Amount.of(account.balance), reserved=Amount.of(account.reserved),
        available=Amount.of(account.balance - account.reserved),
        earnings=Amount.of(int(totals[0])), spend=Amount.of(int(totals[1])),
    )


async def ledger_page(
    session: AsyncSession, account_id: int, limit: int, before: int | None
) -> LedgerPage:
    """Newest first; ``before`` is the cursor (an entry id), so pages never shift as calls land."""
    query = (
        select(LedgerEntry, LedgerTransaction)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    rows = (await session.execute(query)).all()
    entries = [
        LedgerEntryView(
            id=entry.id, transaction_id=tx.id, transaction_kind=tx.kind, reference=tx.reference,
            memo=tx.memo, api_key_id=tx.api_key_id, model=tx.model,
            prompt_tokens=tx.prompt_tokens, completion_tokens=tx.completion_tokens,
            kind=entry.kind, amount=Amount.of(entry.amount), node_id=entry.node_id,
            created_at=tx.created_at,
        )
        for entry, tx in rows[:limit]
    ]
    has_more = len(rows) > limit
    return LedgerPage(
        data=entries, has_more=has_more, next_before=entries[-1].id if has_more else None
    )


@dataclass(frozen=True, slots=True)
class UsageRow:
    """The account's calls on one key and model."""

    key_id: int | None
    model: str | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    spent: int


async def usage_report(session: AsyncSession, account_id: int) -> UsageReport:
    rows = (await session.execute(
        select(
            LedgerTransaction.api_key_id, LedgerTransaction.model, func.count(),
            func.sum(LedgerTransaction.prompt_tokens),
            func.sum(LedgerTransaction.completion_tokens), func.sum(-LedgerEntry.amount),
        )
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == CHARGE)
        .group_by(LedgerTransaction.api_key_id, LedgerTransaction.model)
    )).all()
    usage = [UsageRow(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]
    keys = {
        key.id: key for key in (await session.scalars(
            select(ApiKey).where(ApiKey.account_id == account_id)
        )).all()
    }
    return fold_usage(usage, keys)


def fold_usage(rows: Sequence[UsageRow], keys: dict[int, ApiKey]) -> UsageReport:
    """Per key (with its models), per model, and in total; keys and models in a stable order."""
    by_key: dict[int | None, list[UsageRow]] = defaultdict(list)
    by_model: dict[str | None, list[UsageRow]] = defaultdict(list)
    for row in rows:
        by_key[row.key_id].append(row)
        by_model[row.model].append(row)
    key_usage = []
    for key_id in sorted(by_key, key=lambda k: (k is None, k or 0)):
        key = keys.get(key_id) if key_id is not None else None
        per_model = sorted(by_key[key_id], key=lambda r: r.model or "")
        key_usage.append(KeyUsage(
            key_id=key_id, name=key.name if key else None, prefix=key.prefix if key else None,
            models=[ModelUsage(model=r.model, **_sums([r])) for r in per_model],
            **_sums(by_key[key_id]),
        ))
    model_usage = [
        ModelUsage(model=model, **_sums(by_model[model]))
        for model in sorted(by_model, key=lambda m: m or "")
    ]
    return UsageReport(total=UsageTotals(**_sums(rows)), by_key=key_usage, by_model=model_usage)


def _sums(rows: Iterable[UsageRow]) -> dict[str, Any]:
    rows = list(rows)
    return {
        "calls": sum(r.calls for r in rows),
        "prompt_tokens": sum(r.prompt_tokens for r in rows),
        "completion_tokens": sum(r.completion_tokens for r in rows),
        "spent": Amount.of(sum(r.spent for r in rows)),
    }


def key_view(key: ApiKey) -> KeyView:
    return KeyView(
        id=key.id, prefix=key.prefix, name=key.name, created_at=key.created_at,
        last_used_at=key.last_used_at,
        spend_limit=Amount.of(key.spend_limit) if key.spend_limit is not None else None,
        spent=Amount.of(key.spent), revoked=key.revoked_at is not None,
        revoked_at=key.revoked_at,
    )


async def account_keys(session: AsyncSession, account_id: int) -> list[KeyView]:
    """Newest first, revoked ones included (marked)."""
    keys = await session.scalars(
        select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.id.desc())
    )
    return [key_view(key) for key in keys.all()]


SETTLED_WAIT_S = 1.0


async def settled_here(ledger: Ledger) -> None:
    """Let this replica's queued settlements commit before a page reads the ledger (a call just
    made shows at once); bounded, so a busy writer delays a page by at most SETTLED_WAIT_S."""
    with suppress(TimeoutError):
        async with asyncio.timeout(SETTLED_WAIT_S):
            await ledger.written()
