"""A settlement the database refuses is isolated and rejected; everything else still commits.

Against the real coordinator's ledger on SQLite and PostgreSQL: a lying node's 2^40 prompt
tokens (or an amount that overflows a 64-bit column) cannot stop settlement anywhere, an expired
hold never settles for more than the account can cover, and the database itself refuses a
negative balance.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from support.cluster import RunningCoordinator
from support.ledger_audit import audit

from coordinator.accounts.accounts import node_earnings_account, open_account
from coordinator.catalogue import SEED_PRICE
from coordinator.economy.postings import ServingNode
from coordinator.economy.settlement import CallSettlement
from coordinator.metrics import METRICS
from coordinator.services import Services
from coordinator.store.models import Account, LedgerTransaction

PRICE = SEED_PRICE
STARTER = 50_000


async def _accounts(services: Services, label: str) -> tuple[int, int]:
    now = services.clock.now()
    async with services.database.session() as session, session.begin():
        consumer = (await open_account(session, services.ledger.books, now, STARTER,
                                       label=label)).id
        node = await node_earnings_account(session, f"node-{label}", now)
    return consumer, node


def _settlement(
    reference: str, consumer: int, hold_id: str, hold_amount: int, node: int, *,
    prompt_tokens: int = 10, completion_tokens: int = 5, cost: int | None = None,
) -> CallSettlement:
    return CallSettlement(
        reference=reference, account_id=consumer, api_key_id=None, hold_id=hold_id,
        hold_amount=hold_amount,
        cost=PRICE.cost(prompt_tokens, completion_tokens) if cost is None else cost,
        model="gemma-3-270m", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        nodes=(ServingNode(node_id=f"node-{consumer}", account_id=node,
                           tokens=completion_tokens, trust=1.0, flap_reduction=0.0),),
    )


async def _charged(services: Services) -> dict[str, int]:
    async with services.database.session() as session:
        return dict((await session.execute(
            select(LedgerTransaction.reference, LedgerTransaction.prompt_tokens)
            .where(LedgerTransaction.kind == "call")
        )).all())


def _rejected_metric(coordinator: RunningCoordinator) -> float:
    registry = coordinator.runner.app[METRICS].registry
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == "koretex_ledger_rejected_total":
                return sample.value
    raise AssertionError("koretex_ledger_rejected_total is not exported")


async def _assert_books_add_up(services: Services) -> None:
    result = await audit(services.database, PRICE.input_per_1m, PRICE.output_per_1m)
    assert result.unbalanced_transactions == 0 and result.balance_mismatches == 0
    assert result.negative_balances == 0
    assert result.held_by_accounts == result.minted


async def test_an_overflowing_settlement_is_rejected_and_the_next_honest_one_commits_within_2s(
    coordinator: RunningCoordinator,
) -> None:
    services = coordinator.services
    ledger = services.ledger
    consumer, node = await _accounts(services, "victim")
    before = _rejected_metric(coordinator)
    holds = [await ledger.reserve(consumer, 2_000) for _ in range(4)]
    # A count no 64-bit column holds (the wire refuses far less; this one got past it).
    ledger.settle(_settlement("call:liar", consumer, holds[0], 2_000, node,
                              prompt_tokens=2**70, cost=2_000))
    ledger.settle(_settlement("call:honest-1", consumer, holds[1], 2_000, node))
    ledger.settle(_settlement("call:honest-2", consumer, holds[2], 2_000, node))
    # A hold queued in the same batch is granted, not failed with the liar's error.
    async with asyncio.timeout(2):
        extra = await ledger.reserve(consumer, 1_000)
    started = time.monotonic()
    ledger.settle(_settlement("call:after", consumer, holds[3], 2_000, node))
    ledger.settle(_settlement("call:extra", consumer, extra, 1_000, node))
    async with asyncio.timeout(2):
        while not {"call:after", "call:extra"} <= set(await _charged(services)):
            await asyncio.sleep(0.02)
    assert time.monotonic() - started < 2
    charged = await _charged(services)
    assert "call:liar" not in charged
    assert {"call:honest-1", "call:honest-2"} <= set(charged)
    assert ledger.rejected_writes == 1
    assert _rejected_metric(coordinator) == before + 1
    await ledger.flush()
    await _assert_books_add_up(services)


async def test_2_to_the_40_prompt_tokens_are_recorded_and_charged_no_more_than_the_hold(
    coordinator: RunningCoordinator,
) -> None:
    services = coordinator.services
    ledger = services.ledger
    consumer, node = await _accounts(services, "overcharged")
    hold = await ledger.reserve(consumer, 3_000)
    ledger.settle(_settlement("call:big", consumer, hold, 3_000, node,
                              prompt_tokens=2**40, cost=PRICE.cost(2**40, 5)))
    await ledger.flush()
    assert (await _charged(services))["call:big"] == 2**40  # a BIGINT column holds it
    async with services.database.session() as session:
        balance = await session.scalar(select(Account.balance).where(Account.id == consumer))
    assert balance == STARTER - 3_000
    assert ledger.rejected_writes == 0
    await _assert_books_add_up(services)


async def test_an_expired_hold_settles_for_no_more_than_the_hold_or_what_is_left(
    coordinator: RunningCoordinator,
) -> None:
    services = coordinator.services
    ledger = services.ledger
    consumer, node = await _accounts(services, "late")
    late = await ledger.reserve(consumer, 20_000)
    also_late = await ledger.reserve(consumer, 20_000)
    await ledger.flush()
    async with services.database.session() as session, session.begin():  # both expire
        await session.execute(text("UPDATE holds SET expires_at = :past"),
                              {"past": services.clock.now() - timedelta(seconds=1)})
    assert await ledger.release_expired() >= 2
    # While those calls still ran, the account spent all but 5_000 on another call.
    spender = await ledger.reserve(consumer, STARTER)
    ledger.settle(_settlement("call:spender", consumer, spender, STARTER, node,
                              cost=STARTER - 5_000))
    # The first late call's cost is more than its hold: it pays the hold at most, and no more
    # than is left (5_000); the second then finds nothing left to pay with.
    ledger.settle(_settlement("call:late", consumer, late, 20_000, node, cost=30_000))
    ledger.settle(_settlement("call:also-late", consumer, also_late, 20_000, node, cost=4_000))
    await ledger.flush()
    async with services.database.session() as session:
        balance = await session.scalar(select(Account.balance).where(Account.id == consumer))
    # Never below zero: together the late calls paid at most the 5_000 left (less if the
    # spender's credit line still reserves it).
    assert 0 <= balance <= 5_000
    assert ledger.rejected_writes == 0
    await _assert_books_add_up(services)


async def test_an_expired_hold_with_room_left_pays_its_cost_capped_at_the_hold(
    coordinator: RunningCoordinator,
) -> None:
    services = coordinator.services
    ledger = services.ledger
    consumer, node = await _accounts(services, "roomy")
    late = await ledger.reserve(consumer, 1_000)
    await ledger.flush()
    async with services.database.session() as session, session.begin():
        await session.execute(text("UPDATE holds SET expires_at = :past"),
                              {"past": services.clock.now() - timedelta(seconds=1)})
    await ledger.release_expired()
    ledger.settle(_settlement("call:roomy", consumer, late, 1_000, node, cost=9_999))
    await ledger.flush()
    async with services.database.session() as session:
        balance = await session.scalar(select(Account.balance).where(Account.id == consumer))
    assert balance == STARTER - 1_000
    await _assert_books_add_up(services)


async def test_the_database_refuses_a_negative_balance_but_not_the_issuing_books(
    coordinator: RunningCoordinator,
) -> None:
    services = coordinator.services
    consumer, _node = await _accounts(services, "check")
    with pytest.raises(IntegrityError):
        async with services.database.session() as session, session.begin():
            await session.execute(
                update(Account).where(Account.id == consumer).values(balance=-1)
            )
    async with services.database.session() as session:
        balance = await session.scalar(select(Account.balance).where(Account.id == consumer))
        issued = await session.scalar(
            select(Account.balance).where(Account.id == services.ledger.books.issuance)
        )
    assert balance == STARTER
    assert issued is not None and issued < 0  # issuance goes negative by what it issued
