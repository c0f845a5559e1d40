"""The top-up watcher against a Solana JSON-RPC endpoint on loopback, with payments executed on
LiteSVM: credited once, only when finalized, never for a bad payment, and never lost to an RPC
outage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import pytest_asyncio
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import func, select
from support.solana_chain import USDC, USDC_MINT, ExecutedPayment, UsdcChain
from support.solana_rpc_server import FakeSolanaRpc, refused_url

from coordinator.accounts.accounts import open_account
from coordinator.accounts.topup_routes import open_invoice
from coordinator.clock import ShiftedClock
from coordinator.economy.ledger import SystemBooks, ensure_system_books
from coordinator.economy.solana_rpc import GET_TRANSACTION_CONFIG, SolanaRpc
from coordinator.economy.topup_watcher import TopupWatcher
from coordinator.economy.topups import credits_for
from coordinator.errors import SolanaRpcFailed
from coordinator.settings.economy import TopupSettings
from coordinator.store.database import Database
from coordinator.store.models import Account, LedgerEntry, LedgerTransaction, TopupInvoice

CREDITS_PER_USDC = 2_000_000  # 2 credits per USDC: credits and base units differ
STARTER = 1_000_000
INVOICE = 5 * USDC
TTL = timedelta(minutes=30)
GRACE = timedelta(minutes=5)


@dataclass
class Harness:
    database: Database
    books: SystemBooks
    rpc: FakeSolanaRpc
    chain: UsdcChain = field(default_factory=UsdcChain)
    clock: ShiftedClock = field(default_factory=ShiftedClock)
    treasury: str = field(default_factory=lambda: str(Keypair().pubkey()))
    clients: list[SolanaRpc] = field(default_factory=list)

    @property
    def settings(self) -> TopupSettings:
        return TopupSettings(treasury=self.treasury, solana_rpc_url=self.rpc.url,
                             ttl_s=TTL.total_seconds(), grace_s=GRACE.total_seconds(),
                             rpc_timeout_s=5)

    def watcher(self, url: str | None = None) -> TopupWatcher:
        client = SolanaRpc(url or self.rpc.url, timeout_s=5)
        self.clients.append(client)
        return TopupWatcher(self.database, self.books, self.settings, self.clock, client)

    async def account(self, label: str = "payer") -> int:
        async with self.database.session() as session, session.begin():
            account = await open_account(session, self.books, self.clock.now(), STARTER,
                                         label=label)
            return account.id

    async def invoice(self, account_id: int, amount_raw: int = INVOICE) -> TopupInvoice:
        async with self.database.session() as session, session.begin():
            return await open_invoice(session, account_id, amount_raw,
                                      credits_for(amount_raw, CREDITS_PER_USDC),
                                      self.clock.now(), TTL)

    def pay(
        self, *invoices: TopupInvoice, amount: int = INVOICE, payer: Keypair | None = None,
        to: Pubkey | None = None, mint: Pubkey = USDC_MINT,
    ) -> ExecutedPayment:
        """A Solana Pay transfer naming the invoices' references, executed on LiteSVM."""
        return self.chain.pay(
            payer or self.chain.wallet(mint=mint), to or Pubkey.from_string(self.treasury),
            amount, [invoice.reference for invoice in invoices], mint=mint,
        )

    async def row(self, invoice: TopupInvoice) -> TopupInvoice:
        async with self.database.session() as session:
            found = await session.get(TopupInvoice, invoice.id)
            assert found is not None
            return found

    async def balance(self, account_id: int) -> int:
        async with self.database.session() as session:
            return int(await session.scalar(
                select(Account.balance).where(Account.id == account_id)) or 0)

    async def topups(self) -> list[tuple[str | None, int]]:
        """Every top-up ledger transaction: (reference, amount credited to the account)."""
        async with self.database.session() as session:
            rows = (await session.execute(
                select(LedgerTransaction.reference, LedgerEntry.amount)
                .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
                .where(LedgerTransaction.kind == "topup", LedgerEntry.amount > 0)
            )).all()
        return [(reference, int(amount)) for reference, amount in rows]

    async def total_balance(self) -> int:
        async with self.database.session() as session:
            return int(await session.scalar(select(func.sum(Account.balance))) or 0)


@pytest_asyncio.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    database = await Database.open(database_url)
    rpc = await FakeSolanaRpc().start()
    books = await ensure_system_books(database, ShiftedClock().now())
    harness = Harness(database, books, rpc)
    try:
        yield harness
    finally:
        for client in harness.clients:
            await client.close()
        await rpc.stop()
        await database.close()


async def test_credited_once_and_only_when_finalized(harness: Harness) -> None:
    account = await harness.account()
    invoice = await harness.invoice(account)
    payment = harness.pay(invoice)
    harness.rpc.publish(payment, finalized=False)  # confirmed, not yet finalized
    watcher = harness.watcher()

    report = await watcher.poll_once()
    assert report.credited == [] and report.failed == []
    row = await harness.row(invoice)
    assert row.status == "pending" and row.last_error is not None
    assert "finalized" in row.last_error
    assert await harness.balance(account) == STARTER
    assert harness.rpc.calls("getTransaction")[-1] == [payment.signature, GET_TRANSACTION_CONFIG]

    harness.rpc.finalize(payment.signature)
    assert (await watcher.poll_once()).credited == [invoice.id]
    row = await harness.row(invoice)
    assert (row.status, row.signature, row.paid_raw, row.last_error) == (
        "credited", payment.signature, INVOICE, None)
    credits = credits_for(INVOICE, CREDITS_PER_USDC)
    assert row.credits == credits == 10_000_000
    assert await harness.balance(account) == STARTER + credits

    for _ in range(2):  # later rounds see the same payment and do nothing more
        assert (await watcher.poll_once()).checked == 0
    assert await harness.topups() == [(f"topup:{payment.signature}", credits)]
    assert await harness.balance(account) == STARTER + credits
    assert await harness.balance(harness.books.usdc) == -credits  # posted from USDC clearing
    assert await harness.total_balance() == 0


async def test_a_signature_listed_twice_credits_once(harness: Harness) -> None:
    account = await harness.account()
    invoice = await harness.invoice(account)
    payment = harness.pay(invoice)
    harness.rpc.publish(payment, finalized=True)
    harness.rpc.publish(payment, finalized=True)
    assert (await harness.watcher().poll_once()).credited == [invoice.id]
    assert await harness.topups() == [(f"topup:{payment.signature}",
                                       credits_for(INVOICE, CREDITS_PER_USDC))]


async def test_two_invoices_claiming_one_payment_are_credited_once(harness: Harness) -> None:
    account = await harness.account()
    first, second = await harness.invoice(account), await harness.invoice(account)
    payment = harness.pay(first, second)  # one transfer naming both references
    harness.rpc.publish(payment, finalized=True)
    watcher = harness.watcher()

    assert (await watcher.poll_once()).credited == [first.id]
    await watcher.poll_once()
    assert (await harness.row(first)).status == "credited"
    later = await harness.row(second)
    assert later.status == "pending" and later.signature is None
    assert later.last_error is not None and "already credited" in later.last_error
    assert len(await harness.topups()) == 1
    assert await harness.balance(account) == STARTER + credits_for(INVOICE, CREDITS_PER_USDC)


async def test_two_replicas_racing_credit_once(harness: Harness) -> None:
    account = await harness.account()
    invoices = [await harness.invoice(account) for _ in range(3)]
    for invoice in invoices:
        harness.rpc.publish(harness.pay(invoice), finalized=True)
    reports = await asyncio.gather(*(harness.watcher().poll_once() for _ in range(3)))
    credited = [i for report in reports for i in report.credited]
    assert sorted(credited) == sorted(i.id for i in invoices)
    assert len(await harness.topups()) == 3
    assert await harness.balance(account) == STARTER + 3 * credits_for(INVOICE, CREDITS_PER_USDC)
    assert await harness.total_balance() == 0


async def test_rpc_answering_500_credits_nothing_until_it_recovers(harness: Harness) -> None:
    account = await harness.account()
    invoice = await harness.invoice(account)
    harness.rpc.publish(harness.pay(invoice), finalized=True)
    harness.rpc.failing_status = 500
    watcher = harness.watcher()

    report = await watcher.poll_once()
    assert report.failed == [invoice.id] and report.credited == []
    row = await harness.row(invoice)
    assert row.status == "pending" and row.last_error is not None
    assert "HTTP 500" in row.last_error
    assert await harness.balance(account) == STARTER

    harness.rpc.failing_status = None
    assert (await watcher.poll_once()).credited == [invoice.id]
    assert await harness.balance(account) == STARTER + credits_for(INVOICE, CREDITS_PER_USDC)


async def test_rpc_refusing_connections_credits_nothing_and_leaks_no_url(harness: Harness) -> None:
    account = await harness.account()
    invoice = await harness.invoice(account)
    harness.rpc.publish(harness.pay(invoice), finalized=True)
    down = refused_url()

    assert (await harness.watcher(down).poll_once()).failed == [invoice.id]
    row = await harness.row(invoice)
    assert row.status == "pending" and row.last_error is not None
    assert "cannot reach the Solana RPC" in row.last_error
    assert down.split("//")[1].rstrip("/") not in row.last_error
    assert await harness.topups() == []

    assert (await harness.watcher().poll_once()).credited == [invoice.id]


@pytest.mark.parametrize(("payment", "reason"), [
    ("underpaid", "underpaid: the treasury received 4.99 of 5 USDC"),
    ("wrong mint", "wrong token"),
    ("wrong recipient", "wrong recipient"),
    ("failed", "the transaction failed on chain"),
])
async def test_bad_payments_are_never_credited(
    harness: Harness, payment: str, reason: str
) -> None:
    account = await harness.account()
    invoice = await harness.invoice(account)
    chain = harness.chain
    if payment == "underpaid":
        executed = harness.pay(invoice, amount=INVOICE - 10_000)
    elif payment == "wrong mint":
        lookalike = chain.create_mint()
        executed = harness.pay(invoice, mint=lookalike)
    elif payment == "wrong recipient":
        executed = harness.pay(invoice, to=Keypair().pubkey())
    else:
        executed = harness.pay(invoice, payer=chain.wallet(usdc=USDC))
    harness.rpc.publish(executed, finalized=True)
    watcher = harness.watcher()

    for _ in range(2):
        report = await watcher.poll_once()
        assert report.credited == [] and report.failed == []
        row = await harness.row(invoice)
        assert row.status == "pending" and row.last_error is not None
        assert reason in row.last_error and executed.signature in row.last_error

    harness.clock.advance(TTL + GRACE)
    assert (await watcher.poll_once()).expired == [invoice.id]
    row = await harness.row(invoice)
    assert row.status == "expired" and row.signature is None and reason in (row.last_error or "")
    assert await harness.topups() == []
    assert await harness.balance(account) == STARTER


async def test_expiry_waits_out_the_grace_period_and_an_outage(harness: Harness) -> None:
    account = await harness.account()
    late, unpaid = await harness.invoice(account), await harness.invoice(account)
    watcher = harness.watcher()
    assert (await watcher.poll_once()).expired == []

    harness.clock.advance(TTL + timedelta(seconds=1))  # past expiry, inside the grace period
    assert (await watcher.poll_once()).expired == []
    harness.rpc.publish(harness.pay(late), finalized=True)  # signed at the last moment
    assert (await watcher.poll_once()).credited == [late.id]

    harness.clock.advance(GRACE)
    harness.rpc.failing_status = 500  # a failed look expires nothing
    assert (await watcher.poll_once()).expired == []
    assert (await harness.row(unpaid)).status == "pending"
    harness.rpc.failing_status = None
    assert (await watcher.poll_once()).expired == [unpaid.id]
    assert (await harness.row(unpaid)).status == "expired"
    assert (await harness.row(late)).status == "credited"


async def test_every_rpc_failure_is_one_exception_type(harness: Harness) -> None:
    client = SolanaRpc(harness.rpc.url, timeout_s=0.2)
    harness.clients.append(client)
    reference = str(Keypair().pubkey())
    with pytest.raises(SolanaRpcFailed, match="RPC error -32602"):  # a JSON-RPC error object
        await client.signatures_for_address(reference, commitment="processed")  # type: ignore[arg-type]
    harness.rpc.garbage = '{"jsonrpc": "2.0", "result": {"unexpected": true}, "id": 1}'
    with pytest.raises(SolanaRpcFailed, match="unexpected shape"):
        await client.transaction("1" * 64)
    harness.rpc.garbage = "<html>rate limited</html>"
    with pytest.raises(SolanaRpcFailed, match="unexpected shape"):
        await client.signatures_for_address(reference)
    harness.rpc.garbage, harness.rpc.delay_s = None, 0.5
    with pytest.raises(SolanaRpcFailed, match="timed out"):
        await client.signatures_for_address(reference)
    harness.rpc.delay_s = 0.0
    assert await client.signatures_for_address(reference) == []
    assert await client.transaction("1" * 64) is None
