"""A burst of transfers between two rounds of the top-up watcher: more transactions naming an
invoice's reference than one RPC page holds (a payer's real payment buried under others, by
accident or by someone spamming the reference), and many invoices paid at once. Every payment is
found by paging back to the last transaction judged, and credited exactly once."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import func, select
from support.solana_chain import USDC, ExecutedPayment, UsdcChain
from support.solana_rpc_server import FakeSolanaRpc

from coordinator.accounts.accounts import open_account
from coordinator.accounts.topup_routes import open_invoice
from coordinator.clock import ShiftedClock
from coordinator.economy.ledger import SystemBooks, ensure_system_books
from coordinator.economy.solana_rpc import SolanaRpc
from coordinator.economy.topup_watcher import TopupWatcher
from coordinator.economy.topups import credits_for
from coordinator.settings.economy import TopupSettings
from coordinator.store.database import Database
from coordinator.store.models import Account, LedgerEntry, LedgerTransaction, TopupInvoice

CREDITS_PER_USDC = 2_000_000
STARTER = 1_000_000
INVOICE = 5 * USDC
TTL = timedelta(minutes=30)
BURST = 25


class Chain:
    """A database with system books, a LiteSVM chain and the RPC endpoint that reports it."""

    def __init__(self, database: Database, books: SystemBooks, rpc: FakeSolanaRpc) -> None:
        self.database, self.books, self.rpc = database, books, rpc
        self.svm = UsdcChain()
        self.clock = ShiftedClock()
        self.treasury = Pubkey.from_string(str(Keypair().pubkey()))
        self.payer = self.svm.wallet(usdc=10_000 * USDC)
        self.client = SolanaRpc(rpc.url, timeout_s=5)
        self._labels = itertools.count()

    def watcher(self) -> TopupWatcher:
        settings = TopupSettings(treasury=str(self.treasury), solana_rpc_url=self.rpc.url,
                                 ttl_s=TTL.total_seconds(), rpc_timeout_s=5)
        return TopupWatcher(self.database, self.books, settings, self.clock, self.client)

    async def invoice(self) -> tuple[int, TopupInvoice]:
        async with self.database.session() as session, session.begin():
            account = await open_account(session, self.books, self.clock.now(), STARTER,
                                         label=f"payer-{next(self._labels)}")
            invoice = await open_invoice(session, account.id, INVOICE,
                                         credits_for(INVOICE, CREDITS_PER_USDC),
                                         self.clock.now(), TTL)
            return account.id, invoice

    def transfer(self, invoice: TopupInvoice, amount: int) -> ExecutedPayment:
        """A finalized transfer naming the invoice's reference, executed on LiteSVM."""
        payment = self.svm.pay(self.payer, self.treasury, amount, [invoice.reference])
        self.rpc.publish(payment, finalized=True)
        return payment

    async def balance(self, account_id: int) -> int:
        async with self.database.session() as session:
            return int(await session.scalar(
                select(Account.balance).where(Account.id == account_id)) or 0)

    async def topups(self) -> list[str | None]:
        async with self.database.session() as session:
            return list((await session.execute(
                select(LedgerTransaction.reference)
                .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
                .where(LedgerTransaction.kind == "topup", LedgerEntry.amount > 0)
            )).scalars())

    async def total_balance(self) -> int:
        async with self.database.session() as session:
            return int(await session.scalar(select(func.sum(Account.balance))) or 0)


@pytest_asyncio.fixture
async def chain(database_url: str) -> AsyncIterator[Chain]:
    database = await Database.open(database_url)
    rpc = await FakeSolanaRpc().start()
    books = await ensure_system_books(database, ShiftedClock().now())
    harness = Chain(database, books, rpc)
    try:
        yield harness
    finally:
        await harness.client.close()
        await rpc.stop()
        await database.close()


async def test_a_payment_buried_under_a_burst_is_found_and_credited_once(chain: Chain) -> None:
    account, invoice = await chain.invoice()
    watcher = chain.watcher()
    early = [chain.transfer(invoice, 1) for _ in range(3)]  # dust naming the reference
    assert (await watcher.poll_once()).credited == []
    judged_first = len(chain.rpc.calls("getTransaction"))
    assert judged_first == 3

    # Between two rounds: the real payment, then 24 more transfers, all naming the reference.
    # The newest page (10) holds none of the payment.
    payment = chain.transfer(invoice, INVOICE)
    later = [chain.transfer(invoice, 1) for _ in range(BURST - 1)]
    asked_before = len(chain.rpc.calls("getSignaturesForAddress"))
    assert (await watcher.poll_once()).credited == [invoice.id]

    pages = chain.rpc.calls("getSignaturesForAddress")[asked_before:]
    assert len(pages) == 3  # 10 + 10 + 5, back to the last transaction judged
    assert all(page[1]["until"] == early[-1].signature for page in pages)
    assert [page[1].get("before") for page in pages[1:]] == [
        later[-10].signature, later[-20].signature]
    judged = [call[0] for call in chain.rpc.calls("getTransaction")[judged_first:]]
    assert len(judged) == BURST and set(judged) == {payment.signature,
                                                    *(t.signature for t in later)}

    for _ in range(2):
        assert (await watcher.poll_once()).checked == 0
    credits = credits_for(INVOICE, CREDITS_PER_USDC)
    assert await chain.topups() == [f"topup:{payment.signature}"]
    assert await chain.balance(account) == STARTER + credits
    assert await chain.total_balance() == 0  # minted starter credits and top-ups balance out


async def test_twenty_five_payments_between_two_rounds_are_each_credited_once(
    chain: Chain,
) -> None:
    watcher = chain.watcher()
    invoices = [await chain.invoice() for _ in range(BURST)]
    assert (await watcher.poll_once()).checked == BURST  # nothing paid yet
    payments = [chain.transfer(invoice, INVOICE) for _, invoice in invoices]
    for _, invoice in invoices[:5]:  # some of the references are spammed past a page as well
        for _ in range(12):
            chain.transfer(invoice, 1)

    report = await watcher.poll_once()
    assert sorted(report.credited) == sorted(invoice.id for _, invoice in invoices)
    assert (await watcher.poll_once()).checked == 0
    assert sorted(await chain.topups()) == sorted(f"topup:{p.signature}" for p in payments)
    credits = credits_for(INVOICE, CREDITS_PER_USDC)
    for account, _ in invoices:
        assert await chain.balance(account) == STARTER + credits
    assert await chain.total_balance() == 0
