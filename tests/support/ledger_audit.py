"""Auditing the ledger from the database alone: the invariants an auditor would check."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from coordinator.economy.ledger import ISSUANCE, USDC_CLEARING
from coordinator.store.database import Database
from coordinator.store.models import Account, Hold, LedgerEntry, LedgerTransaction


@dataclass(frozen=True)
class Audit:
    minted: int  # credits issued (starter grants, operator grants, top-ups)
    held_by_accounts: int  # sum of every non-issuing account's balance
    unbalanced_transactions: int
    balance_mismatches: int
    negative_balances: int
    reserved_total: int
    open_holds: int
    charges_not_matching_tokens: int
    calls: int


async def audit(database: Database, input_per_1m: int, output_per_1m: int) -> Audit:
    async with database.session() as session:
        issuers = (await session.scalars(
            select(Account.id).where(Account.label.in_([ISSUANCE, USDC_CLEARING]))
        )).all()
        accounts = (await session.execute(
            select(Account.id, Account.balance, Account.reserved, Account.kind)
        )).all()
        sums = dict((await session.execute(
            select(LedgerEntry.account_id, func.sum(LedgerEntry.amount))
            .group_by(LedgerEntry.account_id)
        )).all())
        unbalanced = (await session.execute(
            select(func.count()).select_from(
                select(LedgerEntry.transaction_id)
                .group_by(LedgerEntry.transaction_id)
                .having(func.sum(LedgerEntry.amount) != 0).subquery()
            )
        )).scalar_one()
        charges = (await session.execute(
            select(LedgerTransaction.prompt_tokens, LedgerTransaction.completion_tokens,
                   func.coalesce(func.sum(LedgerEntry.amount), 0))
            .outerjoin(LedgerEntry, (LedgerEntry.transaction_id == LedgerTransaction.id)
                       & (LedgerEntry.kind == "charge"))
            .where(LedgerTransaction.kind == "call")
            .group_by(LedgerTransaction.id)
        )).all()
        open_holds = (await session.execute(select(func.count()).select_from(Hold))).scalar_one()
    minted = -sum(balance for aid, balance, _, _ in accounts if aid in issuers)
    return Audit(
        minted=minted,
        held_by_accounts=sum(b for aid, b, _, _ in accounts if aid not in issuers),
        unbalanced_transactions=unbalanced,
        balance_mismatches=sum(1 for aid, b, _, _ in accounts if int(sums.get(aid, 0)) != b),
        negative_balances=sum(1 for aid, b, _, _ in accounts if aid not in issuers and b < 0),
        reserved_total=sum(r for _, _, r, _ in accounts),
        open_holds=open_holds,
        charges_not_matching_tokens=sum(
            1 for prompt, completion, charged in charges
            if -int(charged) != prompt * input_per_1m + completion * output_per_1m
        ),
        calls=len(charges),
    )


async def no_open_holds(database: Database) -> bool:
    """Whether every hold is settled or released (credit lines go back once idle)."""
    async with database.session() as session:
        return not await session.scalar(select(func.count()).select_from(Hold))
