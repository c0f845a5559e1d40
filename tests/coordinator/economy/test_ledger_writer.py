"""The ledger's one writer: holds and settlements share a transaction, a hold never lingers, and
replicas writing the same accounts at once neither deadlock nor lose a credit."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from support.ledger_audit import audit

from coordinator.accounts.accounts import node_earnings_account, open_account
from coordinator.catalogue import SEED_PRICE
from coordinator.clock import ShiftedClock
from coordinator.economy.ledger import Ledger, SystemBooks, ensure_system_books
from coordinator.economy.postings import ServingNode
from coordinator.economy.settlement import CallSettlement
from coordinator.errors import InsufficientCredits
from coordinator.settings.economy import EconomySettings
from coordinator.store.database import Database

PRICE = SEED_PRICE
STARTER = 50_000


@dataclass
class Books:
    databases: list[Database]
    ledgers: list[Ledger]
    consumers: list[int]
    nodes: list[int]


@pytest_asyncio.fixture(params=[0, 8], ids=["own-holds", "credit-lines"])
async def books(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Books]:
    """Two ledgers on one database, each with its own connections, as two replicas have."""
    clock = ShiftedClock()
    databases = [await Database.open(database_url) for _ in range(2)]
    system = await ensure_system_books(databases[0], clock.now())
    async with databases[0].session() as session, session.begin():
        consumers = [
            (await open_account(session, system, clock.now(), STARTER, label=f"c{i}")).id
            for i in range(4)
        ]
        nodes = [await node_earnings_account(session, f"node-{i}", clock.now()) for i in range(3)]
    settings = EconomySettings(starter_credits=STARTER, credit_line_holds=request.param)
    ledgers = [Ledger(database, settings, clock, system) for database in databases]
    try:
        yield Books(databases, ledgers, consumers, nodes)
    finally:
        for ledger in ledgers:
            await ledger.close()
        for database in databases:
            await database.close()


@dataclass
class OneAccount:
    database: Database
    system: SystemBooks
    clock: ShiftedClock
    consumer: int
    node: int


@pytest_asyncio.fixture
async def one_account(database_url: str) -> AsyncIterator[OneAccount]:
    """A database with the system books, one consumer with starter credits and one node."""
    clock = ShiftedClock()
    database = await Database.open(database_url)
    system = await ensure_system_books(database, clock.now())
    async with database.session() as session, session.begin():
        consumer = (await open_account(session, system, clock.now(), STARTER, label="c")).id
        node = await node_earnings_account(session, "node-0", clock.now())
    try:
        yield OneAccount(database, system, clock, consumer, node)
    finally:
        await database.close()


def settlement(
    reference: str, account_id: int, hold_id: str, hold_amount: int, tokens: int,
    node_account: int,
) -> CallSettlement:
    return CallSettlement(
        reference=reference, account_id=account_id, api_key_id=None, hold_id=hold_id,
        hold_amount=hold_amount, cost=PRICE.cost(10, tokens), model="gemma-3-270m",
        prompt_tokens=10, completion_tokens=tokens,
        nodes=(ServingNode(node_id="node", account_id=node_account, tokens=tokens, trust=1.0,
                           flap_reduction=0.0),),
    )


async def test_a_hold_skips_the_linger_and_counts_the_settlements_queued_before_it(
    one_account: OneAccount,
) -> None:
    database, system, clock = one_account.database, one_account.system, one_account.clock
    consumer, node = one_account.consumer, one_account.node
    # Settlements linger a minute to gather a batch: a hold must not wait for that. (Each call
    # writes its own hold here: no credit line to lend from.)
    settings = EconomySettings(settle_batch_wait_s=60.0, credit_line_holds=0)
    ledger = Ledger(database, settings, clock, system)
    try:
        everything = await ledger.reserve(consumer, STARTER)
        ledger.settle(settlement("call:first", consumer, everything, STARTER, 5, node))
        rest = STARTER - PRICE.cost(10, 5)
        async with asyncio.timeout(30):
            # Only the settlement queued just before (same transaction) frees the balance.
            again = await ledger.reserve(consumer, rest)
        ledger.settle(settlement("call:second", consumer, again, rest, 0, node))
        await ledger.flush()
        result = await audit(database, PRICE.input_per_1m, PRICE.output_per_1m)
        assert result.open_holds == 0 and result.reserved_total == 0
        assert result.calls == 2 and result.charges_not_matching_tokens == 0
    finally:
        await ledger.close()


async def test_calls_borrow_from_one_credit_line_and_it_goes_back_when_idle(
    one_account: OneAccount,
) -> None:
    database, system, clock = one_account.database, one_account.system, one_account.clock
    consumer, node = one_account.consumer, one_account.node
    ledger = Ledger(database, EconomySettings(credit_line_holds=8, credit_line_idle_s=0.2),
                    clock, system)

    async def reserved() -> tuple[int, int]:
        found = await audit(database, PRICE.input_per_1m, PRICE.output_per_1m)
        return found.reserved_total, found.open_holds

    try:
        holds = [await ledger.reserve(consumer, 1_000) for _ in range(5)]
        assert len(set(holds)) == 1  # one line, lent five times
        assert await reserved() == (8_000, 1)  # the line: eight calls' worth, one row
        for n, hold in enumerate(holds):
            ledger.settle(settlement(f"call:{n}", consumer, hold, 1_000, 10, node))
        await ledger._writes.flush()  # settled; the line is not idle long enough to go back
        line_left = 8_000 - 5 * PRICE.cost(10, 10)
        assert await reserved() == (line_left, 1)
        # Ten calls' worth is more than the line has spare: a new line, the old one retired
        # and released as soon as nothing uses it.
        bigger = await ledger.reserve(consumer, 10_000)
        assert bigger not in holds
        await ledger._writes.flush()
        assert (await reserved())[1] == 1
        ledger.settle(settlement("call:big", consumer, bigger, 10_000, 0, node))
        async with asyncio.timeout(30):  # idle for credit_line_idle_s: released
            while await reserved() != (0, 0):
                await asyncio.sleep(0.05)
        result = await audit(database, PRICE.input_per_1m, PRICE.output_per_1m)
        assert result.calls == 6 and result.charges_not_matching_tokens == 0
        assert result.balance_mismatches == 0 and result.held_by_accounts == result.minted
    finally:
        await ledger.close()


async def test_two_replicas_holding_and_settling_the_same_accounts_lose_nothing(
    books: Books,
) -> None:
    rng = random.Random(11)
    refused = 0

    async def call(n: int) -> None:
        nonlocal refused
        ledger = books.ledgers[n % 2]
        account = rng.choice(books.consumers)
        amount = rng.randint(500, 4_000)
        try:
            hold = await ledger.reserve(account, amount)
        except InsufficientCredits:
            refused += 1
            return
        await asyncio.sleep(rng.random() * 0.01)
        tokens = rng.randint(0, (amount - PRICE.cost(10, 0)) // PRICE.output_per_1m)
        ledger.settle(settlement(f"call:{n}", account, hold, amount, tokens,
                                 rng.choice(books.nodes)))

    await asyncio.gather(*(call(n) for n in range(400)))
    for ledger in books.ledgers:
        await ledger.flush()
    result = await audit(books.databases[0], PRICE.input_per_1m, PRICE.output_per_1m)
    assert result.calls == 400 - refused and refused > 0  # balances ran dry, as intended
    assert result.unbalanced_transactions == 0 and result.balance_mismatches == 0
    assert result.negative_balances == 0
    assert result.open_holds == 0 and result.reserved_total == 0
    assert result.charges_not_matching_tokens == 0
    assert result.held_by_accounts == result.minted == 4 * STARTER
