"""Top-ups end to end: a signed-in account asks for an invoice over HTTP, a wallet pays the
Solana Pay URL on LiteSVM, the loopback RPC reports it finalized, and the coordinator's own
watcher credits it: exactly the invoice's credits, once, with the ledger still adding up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import base58
import pytest_asyncio
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import func, select
from support.cluster import TIMEOUT_FACTOR, RunningCoordinator, start_coordinator
from support.ledger_audit import audit
from support.solana_chain import USDC, USDC_MINT, UsdcChain
from support.solana_rpc_server import FakeSolanaRpc

from coordinator.accounts.accounts import open_account
from coordinator.accounts.sessions import open_session
from coordinator.settings.economy import EconomySettings, TopupSettings
from coordinator.store.models import Account, LedgerTransaction

CREDITS_PER_USDC = 2_000_000
TTL_S = 1800.0


@pytest_asyncio.fixture
async def rpc() -> AsyncIterator[FakeSolanaRpc]:
    server = await FakeSolanaRpc().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def treasury() -> str:
    return str(Keypair().pubkey())


@pytest_asyncio.fixture
async def coordinator(
    tmp_path: Path, database_url: str, rpc: FakeSolanaRpc, treasury: str
) -> AsyncIterator[RunningCoordinator]:
    running = await start_coordinator(
        tmp_path, database_url=database_url,
        economy=EconomySettings(credits_per_usdc=CREDITS_PER_USDC),
        topups=TopupSettings(treasury=treasury, solana_rpc_url=rpc.url, poll_interval_s=0.05,
                             ttl_s=TTL_S, max_pending_per_account=3),
    )
    try:
        yield running
    finally:
        await running.stop()


async def signed_in(coordinator: RunningCoordinator, label: str) -> tuple[int, str]:
    """An account and a session token, made directly (sign-in itself is tested elsewhere)."""
    services = coordinator.services
    now = services.clock.now()
    async with services.database.session() as session, session.begin():
        account = await open_account(session, services.ledger.books, now,
                                     services.settings.economy.starter_credits, label=label)
        token = await open_session(session, account.id, now, timedelta(hours=1))
    return account.id, token


async def balance(coordinator: RunningCoordinator, account_id: int) -> int:
    async with coordinator.services.database.session() as session:
        return int(await session.scalar(
            select(Account.balance).where(Account.id == account_id)) or 0)


def http(coordinator: RunningCoordinator, token: str | None) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return aiohttp.ClientSession(coordinator.base_url, headers=headers)


def pay_like_a_wallet(chain: UsdcChain, url: str) -> Any:
    """Read a Solana Pay transfer request and pay it as a wallet would."""
    parts = urlsplit(url)
    assert parts.scheme == "solana"
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    raw = Decimal(query["amount"]) * USDC
    assert raw == raw.to_integral_value()
    mint = Pubkey.from_string(query["spl-token"])
    return chain.pay(chain.wallet(mint=mint), Pubkey.from_string(parts.path), int(raw),
                     [query["reference"]], mint=mint)


async def test_a_topup_paid_on_chain_is_credited_exactly_once(
    coordinator: RunningCoordinator, rpc: FakeSolanaRpc, treasury: str
) -> None:
    account_id, token = await signed_in(coordinator, "buyer")
    before = await balance(coordinator, account_id)

    async with http(coordinator, token) as client:
        created = await client.post("/v1/account/topups", json={"amount_usdc": "5.25"})
        assert created.status == 201, await created.text()
        invoice = await created.json()
        assert created.headers["Location"] == f"/v1/account/topups/{invoice['id']}"
        assert set(invoice) == {
            "id", "object", "status", "amount_usdc", "amount_raw", "credits", "treasury",
            "usdc_mint", "reference", "payment_url", "created_at", "expires_at", "signature",
            "paid_usdc", "paid_raw", "last_error",
        }
        assert (invoice["object"], invoice["status"], invoice["amount_usdc"],
                invoice["amount_raw"], invoice["credits"]) == (
            "topup", "pending", "5.25", 5_250_000, 10_500_000)
        assert (invoice["treasury"], invoice["usdc_mint"]) == (treasury, str(USDC_MINT))
        assert len(base58.b58decode(invoice["reference"])) == 32
        lifetime = (datetime.fromisoformat(invoice["expires_at"])
                    - datetime.fromisoformat(invoice["created_at"]))
        assert lifetime == timedelta(seconds=TTL_S)
        query = parse_qs(urlsplit(invoice["payment_url"]).query)
        assert query["amount"] == ["5.25"] and query["reference"] == [invoice["reference"]]
        assert query["spl-token"] == [str(USDC_MINT)] and query["label"] == ["Koretex"]

        # A second invoice nobody pays keeps the watcher asking the RPC every round.
        unpaid = await (await client.post("/v1/account/topups", json={"amount_usdc": 1})).json()

        payment = pay_like_a_wallet(UsdcChain(), invoice["payment_url"])
        rpc.publish(payment, finalized=True)

        deadline = time.monotonic() + 15 * TIMEOUT_FACTOR
        while True:
            shown = await (await client.get(f"/v1/account/topups/{invoice['id']}")).json()
            if shown["status"] != "pending" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert shown["status"] == "credited", shown
        assert (shown["signature"], shown["paid_raw"], shown["paid_usdc"],
                shown["credits"], shown["last_error"]) == (
            payment.signature, 5_250_000, "5.25", 10_500_000, None)

        await watcher_rounds_pass(rpc, rounds=3)  # later rounds change nothing
        still = await (await client.get(f"/v1/account/topups/{unpaid['id']}")).json()
        assert still["status"] == "pending" and still["signature"] is None

    assert await balance(coordinator, account_id) == before + 10_500_000
    database = coordinator.services.database
    async with database.session() as session:
        references = (await session.scalars(
            select(LedgerTransaction.reference).where(LedgerTransaction.kind == "topup")
        )).all()
        total = await session.scalar(select(func.sum(Account.balance)))
    assert references == [f"topup:{payment.signature}"]
    assert total == 0  # issuance and the USDC clearing book went negative by what they issued
    books = await audit(database, 0, 0)
    assert books.minted == books.held_by_accounts
    assert books.unbalanced_transactions == books.balance_mismatches == 0
    assert books.negative_balances == 0


async def watcher_rounds_pass(rpc: FakeSolanaRpc, rounds: int) -> None:
    """Wait until the coordinator's watcher has asked the RPC about a pending invoice ``rounds``
    more times."""
    seen = len(rpc.calls("getSignaturesForAddress"))
    deadline = time.monotonic() + 10 * TIMEOUT_FACTOR
    while len(rpc.calls("getSignaturesForAddress")) < seen + rounds:
        assert time.monotonic() < deadline, "the top-up watcher stopped polling"
        await asyncio.sleep(0.01)


async def test_topup_requests_are_checked(coordinator: RunningCoordinator) -> None:
    _, token = await signed_in(coordinator, "owner")
    _, stranger = await signed_in(coordinator, "stranger")

    async with http(coordinator, None) as anonymous:
        refused = await anonymous.post("/v1/account/topups", json={"amount_usdc": "5"})
        assert refused.status == 401
    async with http(coordinator, await coordinator.api_key("keyholder")) as with_key:
        refused = await with_key.post("/v1/account/topups", json={"amount_usdc": "5"})
        assert refused.status == 401  # an API key spends credits; it cannot buy them

    async with http(coordinator, token) as client:
        for body in ({"amount_usdc": "abc"}, {"amount_usdc": 0}, {"amount_usdc": "-5"},
                     {"amount_usdc": "1.0000001"}, {"amount_usdc": "100000"}, {},
                     {"amount_usdc": "5", "tip": "1"}, {"amount_usdc": None}, [5]):
            response = await client.post("/v1/account/topups", json=body)
            assert response.status == 400, (body, await response.text())
            assert (await response.json())["error"]["type"] == "invalid_request_error"
        response = await client.post("/v1/account/topups", data=b"{not json")
        assert response.status == 400

        exact = await client.post("/v1/account/topups", data=b'{"amount_usdc": 0.1}')
        assert exact.status == 201
        invoice = await exact.json()
        assert (invoice["amount_raw"], invoice["credits"]) == (100_000, 200_000)

        for _ in range(2):
            assert (await client.post("/v1/account/topups", json={"amount_usdc": 1})).status \
                == 201
        too_many = await client.post("/v1/account/topups", json={"amount_usdc": 1})
        assert too_many.status == 429

        assert (await client.get("/v1/account/topups/nope")).status == 404
    async with http(coordinator, stranger) as other:
        hidden = await other.get(f"/v1/account/topups/{invoice['id']}")
        assert hidden.status == 404  # another account's invoice does not exist for you


async def test_topups_without_a_treasury_are_refused_clearly(
    tmp_path: Path, database_url: str
) -> None:
    running = await start_coordinator(tmp_path, database_url=database_url)
    try:
        _, token = await signed_in(running, "early")
        async with http(running, token) as client:
            response = await client.post("/v1/account/topups", json={"amount_usdc": "5"})
            assert response.status == 503
            error = (await response.json())["error"]
            assert error["code"] == "topups_disabled" and "treasury" in error["message"]
    finally:
        await running.stop()

