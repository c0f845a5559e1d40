"""Self-dealing: an operator's own key calling its own node earns that node no points and no
bounty, while a stranger's call to the same node earns both. The real coordinator (SQLite and
PostgreSQL), a node enrolled to the operator's account, the official openai client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import openai
import pytest_asyncio
from sqlalchemy import select
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.enrollment import mint
from support.ledger_audit import audit

from coordinator.accounts.sessions import open_session
from coordinator.contributions import JobResult
from coordinator.store.models import LedgerEntry

MODEL = "smollm2-135m-instruct"
ASK: Any = [{"role": "user", "content": "Hello there"}]


@pytest_asyncio.fixture
async def bountied(tmp_path: Path, database_url: str) -> AsyncIterator[RunningCoordinator]:
    """A coordinator paying a 2x bounty on the model, its pool funded by every call."""
    running = await start_coordinator(
        tmp_path / "coordinator", database_url=database_url,
        economy={"bounty_multipliers": {MODEL: 2.0}},
    )
    try:
        yield running
    finally:
        await running.stop()


async def bounties_to(coordinator: RunningCoordinator, account_id: int) -> int:
    await coordinator.services.ledger.flush()
    async with coordinator.services.database.session() as session:
        amounts = await session.scalars(select(LedgerEntry.amount).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == "bounty",
        ))
        return sum(amounts)


def served_tokens(coordinator: RunningCoordinator, node_id: str) -> int:
    points = coordinator.services.points
    assert points is not None
    return sum(
        record.tokens for record in points.batcher.preview()
        if isinstance(record, JobResult) and record.node_id == node_id
    )


async def test_an_operators_own_calls_earn_its_node_nothing(
    bountied: RunningCoordinator, tmp_path: Path
) -> None:
    coordinator, services = bountied, bountied.services
    # The operator's key first (its account holds starter credits), then a session on the
    # same account to enroll its node.
    own_key = await coordinator.api_key("operator")
    owner = await services.keys.authenticate(
        own_key, services.clock.monotonic(), services.clock.now()
    )
    assert owner is not None
    async with services.database.session() as session, session.begin():
        session_token = await open_session(session, owner.account_id, services.clock.now(),
                                           timedelta(hours=1))
    token = (await mint(coordinator, session_token))["token"]
    node = AgentProcess.scripted(coordinator, tmp_path / "node", "--enrollment-token", token)
    await node.start()
    try:
        assert node.node_id is not None
        live = services.hub.get(node.node_id)  # type: ignore[arg-type]
        assert live is not None and live.payee_account_id == owner.account_id

        own = openai.AsyncOpenAI(base_url=f"{coordinator.base_url}/v1", api_key=own_key,
                                 max_retries=0)
        for _ in range(3):
            answer = await own.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)
            assert answer.choices[0].message.content
        assert served_tokens(coordinator, node.node_id) == 0
        assert await bounties_to(coordinator, owner.account_id) == 0

        stranger = await coordinator.client("stranger")
        answer = await stranger.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)
        assert answer.usage is not None
        delivered = answer.usage.completion_tokens
        node_id = node.node_id
        await wait_for(lambda: served_tokens(coordinator, node_id) == delivered,
                       what="the stranger's tokens counted for points")
        assert await bounties_to(coordinator, owner.account_id) > 0
    finally:
        await node.stop()
    price = services.catalogue.get(MODEL)
    assert price is not None
    books = await audit(services.database, price.price.input_per_1m, price.price.output_per_1m)
    assert books.unbalanced_transactions == 0 and books.held_by_accounts == books.minted
