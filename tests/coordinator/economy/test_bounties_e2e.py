"""Computed bounties through the real gateway: paid calls make demand, the next recomputation
raises the model's multiplier, and a later call pays a bounty from the pool (never the consumer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for

from coordinator.economy.bounties import demand_tok_s
from coordinator.economy.ledger import BOUNTY_POOL
from coordinator.routing import RoutingConstants
from coordinator.store.models import Account, LedgerEntry, LedgerTransaction

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Hello"}]
NODE_TOK_S = 10.0  # the scripted node's speed: one token every 0.1 s, one slot


async def balance(coordinator: RunningCoordinator, label: str) -> int:
    async with coordinator.services.database.session() as session:
        value = await session.scalar(select(Account.balance).where(Account.label == label))
    assert value is not None
    return value


async def call_entries(coordinator: RunningCoordinator, completion_id: str) -> list[LedgerEntry]:
    async with coordinator.services.database.session() as session:
        return list((await session.scalars(
            select(LedgerEntry).join(LedgerTransaction)
            .where(LedgerTransaction.reference == f"call:{completion_id}")
        )).all())


async def network_bounties(coordinator: RunningCoordinator) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        reply = await http.get("/v1/network/bounties")
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return {entry["model"]: entry for entry in body["data"]} | {"_epoch": body["epoch"]}


async def test_demand_above_capacity_raises_the_bounty_and_the_pool_pays_it(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
        economy={
            "trust_start": 1.0, "max_bounty_multiplier": 2.0,
            # A tiny target utilisation: two short calls are already more demand than one slow
            # node should carry, so the multiplier reaches its cap and stays there.
            "bounties": {"interval_s": 0.2, "refresh_s": 0.1, "window_s": 60,
                         "target_utilisation": 0.01},
        },
    )
    node = AgentProcess.scripted(
        coordinator, tmp_path / "node", "--delay", "0.1", "--declared-tok-s", str(NODE_TOK_S)
    )
    services, economy = coordinator.services, coordinator.settings.economy
    try:
        await node.start()
        # With the node live and no demand yet, the model pays no bounty.
        await wait_for(
            lambda: (b := services.bounties.bounties.get(MODEL)) is not None
            and b.capacity_tok_s == NODE_TOK_S, 10, "a recomputation that sees the node",
        )
        shown = await network_bounties(coordinator)
        assert shown[MODEL]["multiplier"] == 1.0 and shown[MODEL]["demand_tok_s"] == 0.0
        assert shown[MODEL]["capacity_tok_s"] == NODE_TOK_S and not shown[MODEL]["configured"]
        assert shown["_epoch"] == services.bounties.epoch >= 1

        client = await coordinator.client("alice")
        first = await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8)  # type: ignore[arg-type]
        second = await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8)  # type: ignore[arg-type]
        await services.ledger.flush()
        assert first.usage is not None and second.usage is not None
        assert not [e for e in await call_entries(coordinator, first.id) if e.kind == "bounty"]

        delivered = first.usage.completion_tokens + second.usage.completion_tokens
        expected_demand = demand_tok_s(delivered, economy)
        await wait_for(
            lambda: (b := services.bounties.bounties.get(MODEL)) is not None
            and b.demand_tok_s == expected_demand, 10, "the recomputation to see the demand",
        )
        bounty = services.bounties.bounties[MODEL]
        assert bounty.capacity_tok_s > 0 and bounty.demand_tok_s / bounty.capacity_tok_s > 2.0
        assert bounty.multiplier == 2.0  # demand / capacity, capped
        shown = await network_bounties(coordinator)
        assert shown[MODEL]["multiplier"] == 2.0
        (listed,) = [m for m in (await client.models.list()).data if m.id == MODEL]
        assert listed.model_extra is not None and listed.model_extra["bounty_multiplier"] == 2.0

        # The next call settles with the bounty: paid by the pool, not by the consumer.
        alice_before = await balance(coordinator, "alice")
        pool_before = await balance(coordinator, BOUNTY_POOL)
        payee = f"node:{node.node_id}"
        node_before = await balance(coordinator, payee)
        third = await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8)  # type: ignore[arg-type]
        await services.ledger.flush()
        assert third.usage is not None
        cost = third.usage.prompt_tokens * 10 + third.usage.completion_tokens * 20
        assert await balance(coordinator, "alice") == alice_before - cost

        entries = await call_entries(coordinator, third.id)
        assert sum(e.amount for e in entries) == 0
        provider = cost * economy.provider_share_bps // 10_000
        to_pool = (cost - provider) * economy.bounty_pool_share_bps // 10_000
        paid = [e for e in entries if e.kind == "bounty"]
        pool_id = services.ledger.books.bounty_pool
        (from_pool,) = [e for e in paid if e.account_id == pool_id]
        (to_node,) = [e for e in paid if e.account_id != pool_id]
        # x2 at full trust: the extra is one more provider share, as far as the pool reaches.
        bounty_paid = min(pool_before + to_pool, provider)
        assert bounty_paid > 0 and to_node.amount == -from_pool.amount == bounty_paid
        assert to_node.node_id == node.node_id
        pool_after = await balance(coordinator, BOUNTY_POOL)
        assert pool_after == pool_before + to_pool - bounty_paid
        # Three calls' pool funding is less than one provider share: the pool paid out all it
        # had and stopped there, never going negative and never charging the consumer more.
        assert bounty_paid < provider and pool_after == 0
        assert await balance(coordinator, payee) == node_before + provider + bounty_paid
    finally:
        await node.stop()
        await coordinator.stop()


async def test_requests_refused_for_want_of_a_node_raise_the_bounty(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        economy={"max_bounty_multiplier": 2.0,
                 "bounties": {"interval_s": 0.2, "refresh_s": 0.1, "window_s": 60}},
    )
    services, economy = coordinator.services, coordinator.settings.economy
    try:
        await wait_for(lambda: MODEL in services.bounties.bounties, 10, "a first recomputation")
        assert services.bounties.bounties[MODEL].demand_tok_s == 0.0
        client = await coordinator.client("alice")
        for _ in range(3):  # no node serves the model: each call is refused
            with pytest.raises(openai.InternalServerError) as refused:
                await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8)  # type: ignore[arg-type]
            assert refused.value.status_code == 503
        expected = demand_tok_s(3 * economy.bounties.tokens_per_refused_request, economy)
        await wait_for(
            lambda: services.bounties.bounties[MODEL].demand_tok_s == expected, 10,
            "the recomputation to count the refused demand",
        )
        bounty = services.bounties.bounties[MODEL]
        assert bounty.capacity_tok_s == 0.0 and bounty.multiplier == 2.0
        assert (await network_bounties(coordinator))[MODEL]["multiplier"] == 2.0
    finally:
        await coordinator.stop()


async def test_refused_spam_from_unfunded_or_capped_accounts_raises_no_bounty(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        economy={"bounties": {"interval_s": 0.2, "refresh_s": 0.1, "window_s": 60,
                              "refusals_per_account": 2, "refusals_per_network": 100}},
    )
    services, economy = coordinator.services, coordinator.settings.economy
    try:
        await wait_for(lambda: MODEL in services.bounties.bounties, 10, "a first recomputation")
        broke = openai.AsyncOpenAI(
            base_url=f"{coordinator.base_url}/v1", max_retries=0,
            api_key=await coordinator.api_key("broke", starter_credits=0),
        )
        for _ in range(5):  # no credit to hold: refused before any node is asked
            with pytest.raises(openai.APIStatusError) as unfunded:
                await broke.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8)  # type: ignore[arg-type]
            assert unfunded.value.status_code == 402
        with pytest.raises(openai.AuthenticationError):  # a stranger without a key
            await openai.AsyncOpenAI(
                base_url=f"{coordinator.base_url}/v1", api_key="sk-nobody", max_retries=0,
            ).chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8)  # type: ignore[arg-type]
        assert services.refusals.counts(services.clock.now().timestamp()) == {}

        funded = await coordinator.client("alice")
        for _ in range(6):  # funded, but only its first two refusals count
            with pytest.raises(openai.InternalServerError):
                await funded.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8)  # type: ignore[arg-type]
        assert services.refusals.counts(services.clock.now().timestamp()) == {MODEL: 2}
        expected = demand_tok_s(2 * economy.bounties.tokens_per_refused_request, economy)
        await wait_for(
            lambda: services.bounties.bounties[MODEL].demand_tok_s == expected, 10,
            "the recomputation to count the capped demand",
        )
    finally:
        await coordinator.stop()
