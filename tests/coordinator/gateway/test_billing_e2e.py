"""Paying for calls through the real gateway: exact charges, the revenue share, spend limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest
from sqlalchemy import select
from support.cluster import AgentProcess, start_coordinator

from coordinator.economy.ledger import BOUNTY_POOL, PLATFORM
from coordinator.routing import RoutingConstants
from coordinator.store.models import Account, Node
from coordinator.store.nodes import record_registration
from protocol.messages import Hardware, ModelOffer, Register

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Hello"}]


async def balances(coordinator, *labels: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with coordinator.services.database.session() as session:
        rows = (await session.execute(
            select(Account.label, Account.balance).where(Account.label.in_(labels))
        )).all()
    return {label: balance for label, balance in rows}


async def test_a_call_charges_exactly_and_shares_revenue(tmp_path: Path, database_url: str) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    node = AgentProcess.scripted(coordinator, tmp_path / "node")
    try:
        await node.start()
        client = await coordinator.client("alice")
        done = await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=6)  # type: ignore[arg-type]
        await coordinator.services.ledger.flush()
        assert done.usage is not None
        cost = done.usage.prompt_tokens * 10 + done.usage.completion_tokens * 20
        starter = coordinator.settings.economy.starter_credits
        after = await balances(coordinator, "alice", f"node:{node.node_id}", PLATFORM, BOUNTY_POOL)
        assert after["alice"] == starter - cost
        provider = cost * 8000 // 10_000
        assert after[f"node:{node.node_id}"] == provider
        assert after[PLATFORM] + after[BOUNTY_POOL] == cost - provider
        assert after[BOUNTY_POOL] == (cost - provider) * 2500 // 10_000
    finally:
        await node.stop()
        await coordinator.stop()


async def test_insufficient_credits_is_402_and_spend_limits_hold(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    node = AgentProcess.scripted(coordinator, tmp_path / "node")
    try:
        await node.start()
        broke = openai.AsyncOpenAI(
            base_url=f"{coordinator.base_url}/v1", max_retries=0,
            api_key=await coordinator.api_key("broke", starter_credits=0),
        )
        with pytest.raises(openai.APIStatusError) as refused:
            await broke.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=4)  # type: ignore[arg-type]
        assert refused.value.status_code == 402
        assert refused.value.body["type"] == "insufficient_quota"  # type: ignore[index]

        # a key limited to a few calls' worth stops at its limit though the account has more
        limited = openai.AsyncOpenAI(
            base_url=f"{coordinator.base_url}/v1", max_retries=0,
            api_key=await coordinator.api_key("rich", spend_limit=1_500),
        )
        served = 0
        with pytest.raises(openai.APIStatusError) as limit:
            for _ in range(20):
                await limited.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=4)  # type: ignore[arg-type]
                served += 1
                await coordinator.services.ledger.flush()
        assert limit.value.status_code == 402
        assert "spend limit" in limit.value.message
        assert 1 <= served < 20
    finally:
        await node.stop()
        await coordinator.stop()


async def test_switching_model_starts_the_payout_reduction(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(tmp_path / "c", database_url=database_url)
    try:
        hardware = Hardware(system="Linux", machine="x86_64", chip="t", cores=1, memory_bytes=1)

        def register(model: str) -> Register:
            return Register(
                protocol_version=1, node_id="n1", nonce="x", issued_at="t", signature="s",  # type: ignore[arg-type]
                agent_version="t", engine="t", slots=1, hardware=hardware,
                models=(ModelOffer(model=model, context_length=1),),  # type: ignore[arg-type]
            )

        database = coordinator.services.database
        day0 = datetime(2026, 1, 1, tzinfo=UTC)
        async with database.session() as session, session.begin():
            await record_registration(session, register("smollm2-135m-instruct"), day0)
            await record_registration(
                session, register("smollm2-135m-instruct"), day0 + timedelta(1)
            )
        async with database.session() as session:
            row = await session.get(Node, "n1")
            assert row is not None and row.model_switched_at is None
        async with database.session() as session, session.begin():
            await record_registration(session, register("other-model"), day0 + timedelta(2))
        async with database.session() as session:
            row = await session.get(Node, "n1")
            assert row is not None and row.model_switched_at == day0 + timedelta(2)
            assert row.first_seen == day0
    finally:
        await coordinator.stop()
