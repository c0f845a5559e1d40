"""Thousands of concurrent paid calls with failures, cancellations and top-ups: afterwards the
ledger still adds up to exactly what was minted, nobody is overdrawn, and every charge matches
the tokens its consumer received."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import openai
import pytest
from sqlalchemy import select
from support.cluster import AgentProcess, start_coordinator
from support.ledger_audit import audit

from coordinator.economy.grants import grant
from coordinator.routing import RoutingConstants
from coordinator.settings.economy import EconomySettings
from coordinator.store.models import Account, LedgerTransaction

MODEL = "smollm2-135m-instruct"
CALLS = 1200
CONCURRENCY = 64
ACCOUNTS = 24
STARTER = 6_000  # micro-credits: a few calls each, so balances run dry under load


@pytest.mark.slow
async def test_ledger_invariant_under_concurrent_failing_load(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0, breaker_failures=1000),
        economy=EconomySettings(starter_credits=STARTER, bounty_multipliers={MODEL: 1.5}),
        queue_wait_s=5.0, queue_length=1000,
    )
    agents = [
        AgentProcess.scripted(
            coordinator, tmp_path / f"node-{i}", "--slots", "16", "--delay", "0.001",
            "--fail-rate", "0.05", "--break-rate", "0.05", "--seed", str(i),
        )
        for i in range(4)
    ]
    try:
        await asyncio.gather(*(agent.start() for agent in agents))
        keys = [await coordinator.api_key(f"consumer-{i}") for i in range(ACCOUNTS)]
        clients = [
            openai.AsyncOpenAI(base_url=f"{coordinator.base_url}/v1", api_key=key,
                               max_retries=0, timeout=60)
            for key in keys
        ]
        received: dict[str, int] = {}  # completion id -> tokens the consumer read
        cancelled: set[str] = set()
        outcomes: dict[str, int] = {}
        rng = random.Random(7)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one_call(i: int) -> None:
            client = clients[rng.randrange(ACCOUNTS)]
            stream, cancel = rng.random() < 0.7, rng.random() < 0.15
            max_tokens = rng.randint(1, 8)
            async with gate:
                try:
                    if not stream:
                        done = await client.chat.completions.create(
                            model=MODEL, messages=[{"role": "user", "content": f"q{i}"}],
                            max_tokens=max_tokens,
                        )
                        assert done.usage is not None
                        received[done.id] = done.usage.completion_tokens
                    else:
                        chunks = await client.chat.completions.create(
                            model=MODEL, messages=[{"role": "user", "content": f"q{i}"}],
                            max_tokens=max_tokens, stream=True,
                        )
                        tokens, completion_id = 0, None
                        async for chunk in chunks:
                            completion_id = chunk.id
                            if chunk.choices and chunk.choices[0].delta.content:
                                tokens += 1
                                if cancel:
                                    cancelled.add(chunk.id)
                                    break
                        await chunks.close()
                        assert completion_id is not None
                        received[completion_id] = tokens
                    outcomes["ok"] = outcomes.get("ok", 0) + 1
                except openai.APIStatusError as error:
                    key = str(error.status_code)
                    outcomes[key] = outcomes.get(key, 0) + 1
                except openai.APIError:
                    outcomes["stream_error"] = outcomes.get("stream_error", 0) + 1

        async def top_ups() -> None:
            services = coordinator.services
            for n in range(30):
                await asyncio.sleep(0.05)
                async with services.database.session() as session, session.begin():
                    account = rng.randrange(ACCOUNTS)
                    owner = await session.scalar(
                        select(Account.id).where(Account.label == f"consumer-{account}")
                    )
                    assert owner is not None
                    await grant(session, services.ledger.books, owner, 2_000,
                                services.clock.now(), kind="topup", reference=f"topup:test-{n}")

        await asyncio.gather(top_ups(), *(one_call(i) for i in range(CALLS)))
        services = coordinator.services
        await services.ledger.flush()

        result = await audit(services.database, 10, 20)
        assert outcomes.get("ok", 0) > CALLS // 4, outcomes
        assert outcomes.get("402", 0) > 0, "balances ran dry under load, as intended"
        assert result.unbalanced_transactions == 0
        assert result.balance_mismatches == 0
        assert result.negative_balances == 0
        assert result.reserved_total == 0 and result.open_holds == 0
        assert result.charges_not_matching_tokens == 0
        assert result.held_by_accounts == result.minted
        assert result.minted == ACCOUNTS * STARTER + 30 * 2_000

        # every call a consumer saw is charged for exactly what it received (cancelled streams:
        # at least what was read, never more than was written before the cancel took hold)
        async with services.database.session() as session:
            charged = dict((await session.execute(
                select(LedgerTransaction.reference, LedgerTransaction.completion_tokens)
                .where(LedgerTransaction.kind == "call")
            )).all())
        for completion_id, tokens in received.items():
            billed = charged[f"call:{completion_id}"]
            if completion_id in cancelled:
                assert billed >= tokens
            else:
                assert billed == tokens, completion_id
    finally:
        await asyncio.gather(*(agent.stop() for agent in agents))
        await coordinator.stop()
