"""Watching Solana for top-up payments: the I/O loop around :mod:`coordinator.economy.topups`.

Each round, for every pending invoice: ask the RPC which transactions name the invoice's
reference key, fetch each at finalized commitment, judge them, and carry out
:func:`~coordinator.economy.topups.next_step`. Crediting is one database transaction that both
grants the credits (ledger reference ``topup:<signature>``) and marks the invoice credited with
that signature; the unique signature column and the unique ledger reference make a payment
credit once however many rounds, replicas or invoices see it. An RPC failure is written on the
invoice and retried next round: nothing is credited or expired on a failed look.

The RPC lists an address's transactions a page at a time, newest first. The watcher pages back
(``before``) until it reaches the last transaction it already judged for good (``until``), so a
burst of more transactions than one page (a payment buried under others naming the same
reference) is still seen. That mark is kept in memory per pending invoice and only ever moves
over transactions judged final (rejected); one still on its way to finality is looked at again
next round. A new leader starts without marks and reads each invoice's history once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from coordinator.bus.leader import run_as_leader
from coordinator.clock import Clock
from coordinator.economy.grants import grant
from coordinator.economy.ledger import SystemBooks
from coordinator.economy.needs import ECONOMY_NEEDS
from coordinator.economy.solana_rpc import SolanaRpc
from coordinator.economy.topups import (
    Paid,
    PaymentTerms,
    Rejected,
    Verdict,
    credits_for_payment,
    judge_payment,
    next_step,
)
from coordinator.errors import SolanaRpcFailed
from coordinator.periodic import every
from coordinator.settings.economy import TopupSettings
from coordinator.store.database import Database
from coordinator.store.models import TopupInvoice

log = logging.getLogger(__name__)

MAX_INVOICES_PER_ROUND = 500
MAX_SIGNATURE_PAGES = 50  # per invoice and round; what is left is read in later rounds
ERROR_LENGTH = 300  # the width of topup_invoices.last_error


@dataclass(frozen=True, slots=True)
class PendingInvoice:
    id: str
    account_id: int
    reference: str
    amount_raw: int
    credits: int
    expires_at: datetime


@dataclass
class RoundReport:
    """What one round did, for logs and tests."""

    checked: int = 0
    credited: list[str] = field(default_factory=list)  # invoice ids
    expired: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # invoices the RPC could not be asked about


CreditOutcome = Literal["credited", "settled_elsewhere", "duplicate"]


@dataclass(frozen=True, slots=True)
class JudgedUpTo:
    """An invoice's transactions up to ``signature`` (and all older ones) are judged for good;
    ``rejection`` is the newest of them, kept for the invoice's note."""

    signature: str
    rejection: Rejected | None


class _AlreadyGranted(Exception):
    """The ledger already holds this payment's grant: roll the invoice update back."""


class TopupWatcher:
    def __init__(
        self, database: Database, books: SystemBooks, settings: TopupSettings, clock: Clock,
        rpc: SolanaRpc,
    ) -> None:
        if settings.treasury is None:
            raise ValueError("top-ups need a treasury address")
        self._database = database
        self._books = books
        self._settings = settings
        self._treasury = settings.treasury
        self._clock = clock
        self._rpc = rpc
        self._judged: dict[str, JudgedUpTo] = {}  # pending invoice id -> how far back it is done

    async def run(self, interval_s: float) -> None:
        """Forever: a round, then a pause; a failed round (a database hiccup) is logged."""
        await every(interval_s, self.poll_once, log, "watch for top-ups")

    async def poll_once(self) -> RoundReport:
        """Look once at every pending invoice."""
        report = RoundReport()
        pending = await self._pending()
        still_pending = {invoice.id for invoice in pending}
        self._judged = {id_: mark for id_, mark in self._judged.items() if id_ in still_pending}
        for invoice in pending:
            report.checked += 1
            await self._check(invoice, report)
        if report.failed:
            log.warning("Solana RPC failed for %d top-up invoice(s)", len(report.failed))
        return report

    async def _pending(self) -> list[PendingInvoice]:
        async with self._database.session() as session:
            rows = (await session.execute(
                select(TopupInvoice.id, TopupInvoice.account_id, TopupInvoice.reference,
                       TopupInvoice.amount_raw, TopupInvoice.credits, TopupInvoice.expires_at)
                .where(TopupInvoice.status == "pending")
                .order_by(TopupInvoice.created_at)
                .limit(MAX_INVOICES_PER_ROUND)
            )).all()
        return [PendingInvoice(*row) for row in rows]

    async def _check(self, invoice: PendingInvoice, report: RoundReport) -> None:
        terms = PaymentTerms(invoice.reference, invoice.amount_raw, self._treasury,
                             self._settings.usdc_mint)
        try:
            verdicts = await self._judge_all(invoice.id, terms)
        except SolanaRpcFailed as exc:
            report.failed.append(invoice.id)
            await self._record(invoice.id, exc.message, expire=False)
            return
        now = self._clock.now()
        grace = timedelta(seconds=self._settings.grace_s)
        step = next_step(verdicts, now, invoice.expires_at, grace)
        while step.credit:
            payment = step.credit[0]
            outcome = await self._credit(invoice, payment, now)
            if outcome == "credited":
                report.credited.append(invoice.id)
                log.info("top-up %s credited by transaction %s", invoice.id, payment.signature)
                return
            if outcome == "settled_elsewhere":  # another replica credited or expired it
                return
            verdicts = [
                Rejected(v.signature, "this payment was already credited to another invoice")
                if v == payment else v for v in verdicts
            ]
            step = next_step(verdicts, now, invoice.expires_at, grace)
        await self._record(invoice.id, step.note, expire=step.expire)
        if step.expire:
            report.expired.append(invoice.id)

    async def _judge_all(self, invoice_id: str, terms: PaymentTerms) -> list[Verdict]:
        """Verdicts on the invoice's transactions not yet judged for good, oldest first (the
        first payment is the one credited), after the newest rejection judged before."""
        known = self._judged.get(invoice_id)
        signatures, complete = await self._signatures_since(
            terms.reference, None if known is None else known.signature
        )
        verdicts: list[Verdict] = []
        for signature in reversed(signatures):
            verdicts.append(judge_payment(terms, signature, await self._rpc.transaction(signature)))
        if complete:  # the mark moves only over an unbroken run of final verdicts
            mark = known
            for verdict in verdicts:
                if not isinstance(verdict, Rejected):
                    break
                mark = JudgedUpTo(verdict.signature, verdict)
            if mark is not None:
                self._judged[invoice_id] = mark
        earlier: list[Verdict] = [known.rejection] if known and known.rejection else []
        return earlier + verdicts

    async def _signatures_since(self, reference: str, until: str | None) -> tuple[list[str], bool]:
        """Signatures naming ``reference`` newer than ``until`` (newest first, each once), and
        whether the pages reached back that far."""
        page_size = self._settings.signatures_per_invoice
        seen: set[str] = set()
        signatures: list[str] = []
        before: str | None = None
        for _ in range(MAX_SIGNATURE_PAGES):
            page = await self._rpc.signatures_for_address(
                reference, limit=page_size, before=before, until=until
            )
            for status in page:
                signature = str(status.signature)
                if signature not in seen:
                    seen.add(signature)
                    signatures.append(signature)
            if len(page) < page_size:
                return signatures, True
            before = str(page[-1].signature)
        log.warning("top-up reference %s names more than %d transactions; reading the rest in"
                    " later rounds", reference, MAX_SIGNATURE_PAGES * page_size)
        return signatures, False

    async def _credit(self, invoice: PendingInvoice, payment: Paid, now: datetime) -> CreditOutcome:
        credits = credits_for_payment(invoice.credits, invoice.amount_raw, payment.paid_raw)
        try:
            async with self._database.session() as session, session.begin():
                claimed = await session.execute(
                    update(TopupInvoice)
                    .where(TopupInvoice.id == invoice.id, TopupInvoice.status == "pending")
                    .values(status="credited", signature=payment.signature,
                            paid_raw=payment.paid_raw, credits=credits, last_error=None)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    return "settled_elsewhere"
                granted = await grant(
                    session, self._books, invoice.account_id, credits, now,
                    reference=f"topup:{payment.signature}", kind="topup",
                    memo=f"USDC top-up {invoice.id}",
                )
                if not granted:
                    raise _AlreadyGranted
        except (IntegrityError, _AlreadyGranted):
            # The signature is on another invoice already (unique column), or its grant is in
            # the ledger: either way this payment has been credited once, and only once.
            return "duplicate"
        return "credited"

    async def _record(self, invoice_id: str, note: str | None, *, expire: bool) -> None:
        values: dict[str, object] = {"last_error": note[:ERROR_LENGTH] if note else None}
        if expire:
            values["status"] = "expired"
        async with self._database.session() as session, session.begin():
            await session.execute(
                update(TopupInvoice)
                .where(TopupInvoice.id == invoice_id, TopupInvoice.status == "pending")
                .values(**values)
            )


TOPUP_WATCHER = web.AppKey("topup_watcher", TopupWatcher)


async def topup_watching(app: web.Application) -> AsyncIterator[None]:
    """The app's watcher (a ``cleanup_ctx`` after the one that builds the services): started only
    when a treasury is configured, stopped before the database closes."""
    services = app[ECONOMY_NEEDS]
    settings = services.settings.topups
    if settings.treasury is None:
        yield
        return
    rpc = SolanaRpc(settings.solana_rpc_url, timeout_s=settings.rpc_timeout_s)
    watcher = TopupWatcher(services.database, services.ledger.books, settings, services.clock, rpc)
    app[TOPUP_WATCHER] = watcher
    task = asyncio.create_task(run_as_leader(  # one watcher across all replicas
        services.bus, "topup-watcher", lambda: watcher.run(settings.poll_interval_s),
        lease_s=services.settings.bus.leader_lease_s,
    ))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await rpc.close()

