"""The double-entry ledger on the database: holds, batched settlement, grants.

A call first *holds* its worst-case cost (an atomic conditional UPDATE, so no number of
concurrent calls on any number of keys or replicas can overdraw an account); most holds are lent
from a credit line this replica reserved earlier (:mod:`coordinator.economy.credit_lines`), so
they cost no database write. When a call ends, its settlement is queued and written with others
in one transaction (:mod:`coordinator.economy.settlement`): the hold is released and the
postings from :mod:`coordinator.economy.postings` are recorded with the balances they move
(:mod:`coordinator.economy.balances`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.clock import Clock
from coordinator.economy.balances import (
    BalanceChanges,
    apply_balance_changes,
    lock_accounts,
    new_id,
    release_hold_rows,
)
from coordinator.economy.credit_lines import CreditLine, CreditLines
from coordinator.economy.group_commit import GroupCommit
from coordinator.economy.holds import HoldAsk, decide_holds
from coordinator.economy.postings import Books, Posting
from coordinator.economy.settlement import CallSettlement, LineSettlement, settle_calls
from coordinator.errors import CoordinatorError, InsufficientCredits
from coordinator.settings.economy import EconomySettings
from coordinator.store.database import Database, is_transient
from coordinator.store.models import Account, ApiKey, Hold, LedgerEntry, LedgerTransaction

log = logging.getLogger(__name__)

# Core tables for executemany writes (the ORM would insert row by row to fetch ids).
_HOLDS = cast(Table, Hold.__table__)
_ENTRIES = cast(Table, LedgerEntry.__table__)

ISSUANCE = "system:issuance"  # starter and operator grants enter the network here
USDC_CLEARING = "system:usdc"  # top-ups paid on Solana enter here
PLATFORM = "platform:revenue"
BOUNTY_POOL = "platform:bounty_pool"
SYSTEM_LABELS = (ISSUANCE, USDC_CLEARING, PLATFORM, BOUNTY_POOL)


@dataclass(frozen=True, slots=True)
class SystemBooks:
    issuance: int
    usdc: int
    platform: int
    bounty_pool: int

    @property
    def books(self) -> Books:
        return Books(platform=self.platform, bounty_pool=self.bounty_pool)


@dataclass(eq=False)
class _HoldRequest:
    account_id: int
    amount: int
    api_key_id: int | None  # set only when the key has a spend limit
    outcome: asyncio.Future[str]
    line: bool = False  # open a credit line: reserve up to ``amount`` x credit_line_holds
    granted: int = 0
    refusal: str = ""


@dataclass(frozen=True, slots=True)
class _Release:
    """A hold no call will settle (an unused credit line, an abandoned hold): delete it."""

    hold_id: str
    account_id: int


_Write = _HoldRequest | CallSettlement | LineSettlement | _Release


async def ensure_system_books(database: Database, now: datetime) -> SystemBooks:
    """The platform's own accounts, created on first start (safely, if replicas race)."""
    ids: dict[str, int] = {}
    for label in SYSTEM_LABELS:
        for _ in range(2):
            try:
                async with database.session() as session, session.begin():
                    account_id = await session.scalar(
                        select(Account.id).where(Account.label == label)
                    )
                    if account_id is None:
                        kind = "system" if label.startswith("system:") else "platform"
                        account = Account(kind=kind, label=label, created_at=now, balance=0,
                                          reserved=0)
                        session.add(account)
                        await session.flush()
                        account_id = account.id
                ids[label] = account_id
                break
            except IntegrityError:  # another replica created it first: read theirs
                continue
    return SystemBooks(ids[ISSUANCE], ids[USDC_CLEARING], ids[PLATFORM], ids[BOUNTY_POOL])


async def record(
    session: AsyncSession, kind: str, postings: Sequence[Posting], now: datetime, *,
    reference: str | None = None, memo: str | None = None,
) -> str:
    """Write one balanced transaction and move the balances, inside the caller's transaction."""
    if sum(p.amount for p in postings) != 0:
        raise ValueError("unbalanced postings")
    transaction_id = new_id()
    await session.execute(insert(LedgerTransaction).values(
        id=transaction_id, kind=kind, reference=reference, created_at=now, memo=memo,
        prompt_tokens=0, completion_tokens=0,
    ))
    await session.execute(insert(_ENTRIES), [
        {"transaction_id": transaction_id, "account_id": p.account_id, "amount": p.amount,
         "kind": p.kind, "node_id": p.node_id}
        for p in postings
    ])
    deltas: dict[int, int] = defaultdict(int)
    for p in postings:
        deltas[p.account_id] += p.amount
    for account_id in sorted(deltas):
        await session.execute(
            update(Account).where(Account.id == account_id)
            .values(balance=Account.balance + deltas[account_id])
        )
    return transaction_id


class Ledger:
    def __init__(
        self, database: Database, settings: EconomySettings, clock: Clock, books: SystemBooks
    ) -> None:
        self._database = database
        self._settings = settings
        self._clock = clock
        self.books = books
        # One writer for holds and settlements, in one transaction per batch: a hold never
        # waits behind another writer's lock (SQLite has one writer; PostgreSQL locks the
        # account row), and the settlements released before it count towards what it may take.
        self._writes: GroupCommit[_Write] = GroupCommit(
            self._write_batch, max_batch=settings.settle_batch_max,
            linger_s=settings.settle_batch_wait_s,
            retry=lambda item: not isinstance(item, _HoldRequest),
            urgent=lambda item: isinstance(item, _HoldRequest),
            reject=_answer_rejected, transient=is_transient,
        )
        # Lines stop lending at half the holds' lifetime, so a line's row outlives its calls.
        self._lines = CreditLines(max_age_s=settings.hold_ttl_s / 2)
        self._idle_timers: dict[str, asyncio.TimerHandle] = {}

    # --- holds ---------------------------------------------------------------------------------

    async def reserve(
        self, account_id: int, amount: int, *, api_key_id: int | None = None,
        key_has_limit: bool = False,
    ) -> str:
        """Hold ``amount`` of the account's spendable balance; raises InsufficientCredits.

        A key with a spend limit gets its own hold row (the key's room is checked with it);
        other holds are lent from the account's credit line, opened when it runs short."""
        use_line = not key_has_limit and self._settings.credit_line_holds > 1
        if use_line:
            lent = self._lines.borrow(account_id, amount, self._clock.monotonic())
            self._release_lines(self._lines.releasable())
            if lent is not None:
                return lent
        request = _HoldRequest(
            account_id, amount, api_key_id if key_has_limit else None,
            asyncio.get_running_loop().create_future(), line=use_line,
        )
        self._writes.put(request)
        try:
            return await request.outcome
        except asyncio.CancelledError:
            outcome = request.outcome
            if outcome.done() and not outcome.cancelled() and outcome.exception() is None:
                self.abandon(outcome.result(), account_id, amount)  # granted, never to be used
            raise

    def abandon(self, hold_id: str, account_id: int, amount: int) -> None:
        """Give back a hold whose call will never run or settle."""
        if hold_id in self._lines:
            if self._lines.repay(hold_id, amount, 0):
                self._release_when_idle(hold_id)
            self._release_lines(self._lines.releasable())
        else:
            self._writes.put(_Release(hold_id, account_id))

    async def _write_batch(self, items: list[_Write]) -> None:
        holds = [item for item in items if isinstance(item, _HoldRequest)]
        settlements = [item for item in items if isinstance(item, CallSettlement | LineSettlement)]
        releases = [item for item in items if isinstance(item, _Release)]
        # A failure leaves the hold requests unanswered: the writer writes them again without
        # the item at fault, or rejects them (``_answer_rejected``).
        async with self._database.session() as session, session.begin():
            if not self._database.is_sqlite:  # SQLite's one writer locks the whole file
                await lock_accounts(
                    session, self._accounts_written(holds, settlements, releases)
                )
            # Settlements and releases first: what they free counts for the holds after.
            if settlements:
                await settle_calls(
                    session, settlements, self.books.books, self._settings, self._clock.now()
                )
            if releases:
                await self._release_in(session, [release.hold_id for release in releases])
            accepted = await self._grant_holds_in(session, holds) if holds else {}
        now = self._clock.monotonic()
        for request in holds:
            hold_id = accepted.get(id(request))
            if request.outcome.done():  # the caller gave up while it was written
                if hold_id is not None:
                    self._writes.put(_Release(hold_id, request.account_id))
                continue
            if hold_id is None:
                request.outcome.set_exception(InsufficientCredits(
                    "insufficient credits for this request: top up, or lower max_tokens"
                    if request.refusal == "balance"
                    else "this API key has reached its spend limit"
                ))
                continue
            if request.line:
                self._lines.open(request.account_id, hold_id, request.granted,
                                 lent=request.amount, now=now)
                self._release_lines(self._lines.releasable())
            request.outcome.set_result(hold_id)

    def _accounts_written(
        self, holds: list[_HoldRequest], settlements: list[CallSettlement | LineSettlement],
        releases: list[_Release],
    ) -> set[int]:
        accounts = {request.account_id for request in holds}
        accounts.update(release.account_id for release in releases)
        for settled in settlements:
            item = settled.call if isinstance(settled, LineSettlement) else settled
            accounts.add(item.account_id)
            accounts.update(node.account_id for node in item.nodes)
        if settlements:
            accounts.update((self.books.platform, self.books.bounty_pool))
        return accounts

    async def _grant_holds_in(
        self, session: AsyncSession, requests: list[_HoldRequest]
    ) -> dict[int, str]:
        """Decide every request of the batch against locked balances, in arrival order."""
        expires_at = self._clock.now() + timedelta(seconds=self._settings.hold_ttl_s)
        accepted: dict[int, str] = {}
        account_ids = sorted({r.account_id for r in requests})
        spendable = {
            row[0]: row[1] - row[2] for row in (await session.execute(
                select(Account.id, Account.balance, Account.reserved)
                .where(Account.id.in_(account_ids)).order_by(Account.id).with_for_update()
            )).all()
        }
        key_ids = sorted({r.api_key_id for r in requests if r.api_key_id is not None})
        key_room: dict[int, int] = {}
        if key_ids:
            key_room = {
                row[0]: row[1] - row[2] - row[3] for row in (await session.execute(
                    select(ApiKey.id, ApiKey.spend_limit, ApiKey.spent, ApiKey.reserved)
                    .where(ApiKey.id.in_(key_ids)).order_by(ApiKey.id).with_for_update()
                )).all() if row[1] is not None
            }
        decisions = decide_holds([
            HoldAsk(request.account_id, request.amount, request.api_key_id,
                    self._settings.credit_line_holds if request.line else 0)
            for request in requests
        ], spendable, key_room)
        batch = BalanceChanges()
        holds: list[dict[str, object]] = []
        for request, decision in zip(requests, decisions, strict=True):
            if decision.refusal:
                request.refusal = decision.refusal
                continue
            request.granted = decision.granted
            batch.reserved_release[request.account_id] -= request.granted
            if decision.limited_key is not None:
                batch.key_release[decision.limited_key] -= request.amount
            hold_id = new_id()
            accepted[id(request)] = hold_id
            holds.append({"id": hold_id, "account_id": request.account_id,
                          "api_key_id": request.api_key_id, "amount": request.granted,
                          "expires_at": expires_at})
        if holds:
            await apply_balance_changes(session, batch)
            await session.execute(insert(_HOLDS), holds)
        return accepted

    async def release_expired(self) -> int:
        """Release holds whose calls never settled (a replica died mid-call)."""
        now = self._clock.now()
        async with self._database.session() as session, session.begin():
            rows = (await session.execute(
                delete(Hold).where(Hold.expires_at < now)
                .returning(Hold.account_id, Hold.api_key_id, Hold.amount)
            )).all()
            await release_hold_rows(session, [(r[0], r[1], r[2]) for r in rows])
        return len(rows)

    async def _release_in(self, session: AsyncSession, hold_ids: list[str]) -> None:
        rows = (await session.execute(
            delete(Hold).where(Hold.id.in_(hold_ids))
            .returning(Hold.account_id, Hold.api_key_id, Hold.amount)
        )).all()
        await release_hold_rows(session, [(r[0], r[1], r[2]) for r in rows])

    def _release_lines(self, lines: list[CreditLine]) -> None:
        """Queue the deletion of credit lines no call uses any more."""
        for line in lines:
            timer = self._idle_timers.pop(line.hold_id, None)
            if timer is not None:
                timer.cancel()
            self._writes.put(_Release(line.hold_id, line.account_id))

    def _release_when_idle(self, hold_id: str) -> None:
        """Release the line if no call has used it for ``credit_line_idle_s``."""
        previous = self._idle_timers.pop(hold_id, None)
        if previous is not None:
            previous.cancel()

        def release_if_unused() -> None:
            self._idle_timers.pop(hold_id, None)
            self._release_lines(self._lines.take_unused(hold_id))

        self._idle_timers[hold_id] = asyncio.get_running_loop().call_later(
            self._settings.credit_line_idle_s, release_if_unused
        )

    # --- settlement ----------------------------------------------------------------------------

    @property
    def pending_writes(self) -> int:
        """Holds, settlements and releases queued for the next group commit."""
        return len(self._writes)

    @property
    def rejected_writes(self) -> int:
        """Writes the database refused, given up on so that the others could commit."""
        return self._writes.rejected

    def settle(self, settlement: CallSettlement) -> None:
        """Queue a call's settlement; written within milliseconds, batched with others."""
        if settlement.hold_id not in self._lines:
            self._writes.put(settlement)
            return
        self._writes.put(LineSettlement(settlement))
        if self._lines.repay(settlement.hold_id, settlement.hold_amount, settlement.cost):
            self._release_when_idle(settlement.hold_id)
        self._release_lines(self._lines.releasable())

    async def written(self) -> None:
        """Wait until every write queued so far is committed (or rejected); nothing released."""
        await self._writes.flush()

    async def flush(self) -> None:
        """Wait until every queued write is done, unused credit lines released."""
        self._release_lines(self._lines.take_unused())
        await self._writes.flush()

    async def close(self, timeout_s: float = 10.0) -> None:
        self._release_lines(self._lines.take_unused())
        for timer in self._idle_timers.values():
            timer.cancel()
        self._idle_timers.clear()
        await self._writes.close(timeout_s)

class LedgerWriteRejected(CoordinatorError):
    """The database refused a ledger write; the writer gave up on it so others could commit."""


def _answer_rejected(item: _Write, error: Exception) -> None:
    """Whoever waits on a rejected write gets an error; nobody waits on the others (a rejected
    settlement leaves its hold to expire, so the consumer is not charged)."""
    if isinstance(item, _HoldRequest) and not item.outcome.done():
        rejected = LedgerWriteRejected("the ledger could not record this request's hold")
        rejected.__cause__ = error
        item.outcome.set_exception(rejected)
