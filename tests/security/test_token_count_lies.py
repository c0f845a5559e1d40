"""A real agent (real CLI, link and llama.cpp engine) patched to claim 100x the completion tokens
it streamed and five million prompt tokens: the consumer's usage and the node's pay use the
coordinator's own counts (the tokens relayed; the prompt's byte bound), and the node gets a
recorded fault. Books audit clean and the next call settles within 2 s (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import select
from support.cluster import REPO, AgentProcess, start_coordinator
from support.ledger_audit import audit

from coordinator.accounts.enrollment import node_earned
from coordinator.hub.calls import PROMPT_TEMPLATE_ALLOWANCE
from coordinator.routing import RoutingConstants
from coordinator.store.models import LedgerTransaction
from protocol.ids import NodeId

MODEL = "smollm2-135m-instruct"
PROMPT = "Name three colours."


async def _settled(services: object, call_id: str) -> LedgerTransaction:
    database = services.database  # type: ignore[attr-defined]
    async with asyncio.timeout(2):
        while True:
            async with database.session() as session:
                row = await session.scalar(select(LedgerTransaction).where(
                    LedgerTransaction.reference == f"call:{call_id}"
                ))
            if row is not None:
                return row
            await asyncio.sleep(0.02)


async def test_inflated_token_claims_are_paid_on_the_coordinators_count(
    tmp_path: Path, database_url: str, smollm2_path: Path
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    liar = AgentProcess(coordinator, [
        sys.executable, str(REPO / "tests" / "support" / "lying_agent.py"), "node", "run",
        "--coordinator", coordinator.base_url, "--model", str(smollm2_path), "--slots", "1",
        "--context-length", "2048",
    ], tmp_path / "liar", env={"KORETEX_LIE_FACTOR": "100"})
    services = coordinator.services
    try:
        await liar.start()
        client = await coordinator.client("consumer")
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=8,
            temperature=0, stream=True, stream_options={"include_usage": True},
        )
        text, usage, call_id = "", None, ""
        async for chunk in stream:
            call_id = chunk.id
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage is not None:
                usage = chunk.usage
        assert usage is not None and text
        # the agent streamed at most 8 tokens and claimed 100x as many
        assert 1 <= usage.completion_tokens <= 8
        assert usage.completion_tokens <= len(text.encode()) + 4
        bound = len(PROMPT) + len("user") + 2 * PROMPT_TEMPLATE_ALLOWANCE
        assert 0 < usage.prompt_tokens <= bound < 5_000_000

        row = await _settled(services, call_id)
        async with services.database.session() as session:
            earned = await node_earned(session, liar.node_id)
        assert row.completion_tokens == usage.completion_tokens
        assert row.prompt_tokens == usage.prompt_tokens
        assert earned > 0
        node = services.hub.get(NodeId(liar.node_id))
        assert node is not None
        assert any("completion tokens" in f for f in node.faults)
        assert any("prompt tokens" in f for f in node.faults)

        # an honest call afterwards (the same node, paid on the coordinator's count) settles
        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
        )
        settled = await _settled(services, answer.id)
        assert answer.usage is not None
        assert settled.completion_tokens == answer.usage.completion_tokens <= 4
        result = await audit(services.database, 10, 20)
        assert result.negative_balances == 0 and result.balance_mismatches == 0
        assert result.held_by_accounts == result.minted
    finally:
        await liar.stop()
        await coordinator.stop()
