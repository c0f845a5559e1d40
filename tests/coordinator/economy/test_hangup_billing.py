"""A consumer who hangs up mid-answer pays for the prompt and for the tokens delivered to it:
the node did the prompt's work, even though no end ever reported its count."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from support.cluster import AgentProcess, start_coordinator

from coordinator.gateway.billing import prompt_token_estimate
from coordinator.routing import RoutingConstants
from coordinator.store.models import LedgerEntry, LedgerTransaction
from protocol.chat import ChatMessage

MODEL = "smollm2-135m-instruct"
QUESTION = "Tell me a long story about a lighthouse keeper and the sea, please."


async def test_a_consumer_who_hangs_up_pays_the_prompt_and_what_it_read(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    node = AgentProcess.scripted(coordinator, tmp_path / "node", "--delay", "0.05")
    try:
        await node.start()
        client = await coordinator.client("quitter")
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=200,
            stream=True,
        )
        read, completion_id = 0, ""
        async for chunk in stream:
            completion_id = chunk.id
            if chunk.choices and chunk.choices[0].delta.content:
                read += 1
                if read == 2:
                    break
        await stream.close()
        services = coordinator.services
        found = None
        async with asyncio.timeout(10):
            while found is None:
                await services.ledger.flush()
                async with services.database.session() as session:
                    found = (await session.execute(
                        select(LedgerTransaction.id, LedgerTransaction.prompt_tokens,
                               LedgerTransaction.completion_tokens)
                        .where(LedgerTransaction.reference == f"call:{completion_id}")
                    )).first()
                await asyncio.sleep(0.05)
        transaction_id, prompt_tokens, completion_tokens = found
        expected_prompt = prompt_token_estimate((ChatMessage(role="user", content=QUESTION),))
        assert prompt_tokens == expected_prompt > 0
        assert read <= completion_tokens < 200  # what was written before the hang-up took hold
        async with services.database.session() as session:
            charged = await session.scalar(
                select(LedgerEntry.amount).where(LedgerEntry.transaction_id == transaction_id,
                                                 LedgerEntry.kind == "charge")
            )
        price = services.catalogue.get(MODEL)
        assert price is not None
        assert charged == -price.price.cost(prompt_tokens, completion_tokens)
    finally:
        await node.stop()
        await coordinator.stop()
