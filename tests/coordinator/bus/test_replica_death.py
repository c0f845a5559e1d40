"""Three replicas behind nginx under load, one SIGKILLed mid-stream: no request hangs, every
consumer gets its tokens or a clean error and is charged for exactly what it received, the dead
replica's nodes serve again through nginx within their backoff cap, its periodic jobs move to a
survivor, and the shared ledger adds up afterwards."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from support.cluster import TIMEOUT_FACTOR
from support.ledger_audit import audit, no_open_holds
from support.replicas import (
    MODEL,
    Nginx,
    Replica,
    api_key,
    client,
    scripted_node,
    start_replicas,
    wait_for_async,
)

from coordinator.store.database import Database
from coordinator.store.models import LedgerTransaction

NODES = 4
CONSUMERS = 24
TOKENS = 60
BACKOFF_CAP_S = 2.0  # the scripted nodes' KORETEX_BACKOFF_MAX_S


@dataclass
class Result:
    completion_id: str | None = None
    tokens: int = 0
    finished: bool = False
    error: str | None = None  # "stream": an error event; "connection": the replica vanished


async def test_replica_killed_mid_load(tmp_path: Path, shared_database: str) -> None:
    replicas = await start_replicas(
        tmp_path, shared_database, 3, KORETEX_ECONOMY__HOLD_TTL_S="15"
    )
    nginx = Nginx(tmp_path / "nginx", [r.port for r in replicas])
    await nginx.start()
    nodes = [
        scripted_node([nginx.base_url], tmp_path / f"node-{i}", "--slots", "2", "--delay", "0.05")
        for i in range(NODES)
    ]
    try:
        for node in nodes:
            await node.start(wait=False)
        await wait_for_async(
            lambda: _placed(replicas, NODES), 60, "every node to connect and be seen everywhere"
        )
        placement = {r.name: (await r.health())["nodes"] for r in replicas}
        victim = next(r for r in replicas if placement[r.name] > 0)
        survivors = [r for r in replicas if r is not victim]
        key = await api_key(shared_database, "consumers")
        consumer = client(nginx.base_url, key)
        results = [Result() for _ in range(CONSUMERS)]
        streaming = asyncio.Event()

        async def one(i: int) -> None:
            result = results[i]
            try:
                stream = await consumer.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"q{i}"}],
                    max_tokens=TOKENS, stream=True,
                )
                async for chunk in stream:
                    result.completion_id = chunk.id
                    if chunk.choices and chunk.choices[0].delta.content:
                        result.tokens += 1
                        if sum(r.tokens > 0 for r in results) >= 2 * NODES:
                            streaming.set()
                    if chunk.choices and chunk.choices[0].finish_reason:
                        result.finished = True
            except openai.APIConnectionError:
                result.error = "connection"
            except openai.APIError as error:
                result.error = f"stream: {error}"

        load = asyncio.gather(*(one(i) for i in range(CONSUMERS)))
        await asyncio.wait_for(streaming.wait(), 60 * TIMEOUT_FACTOR)
        victim.kill()
        # No request hangs: all of them end, with tokens or a clean error.
        await asyncio.wait_for(load, 120 * TIMEOUT_FACTOR)
        assert all(r.finished or r.error for r in results), results
        assert sum(r.finished for r in results) > CONSUMERS // 2, "\n".join(map(str, results))

        # The victim's nodes dial nginx again and serve from the survivors within the cap
        # (plus the time to notice the dead link).
        await wait_for_async(
            lambda: _placed(survivors, NODES), 10 + 3 * BACKOFF_CAP_S,
            "the dead replica's nodes to serve again through the others",
        )
        after = await consumer.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "again"}], max_tokens=3,
        )
        assert after.choices[0].message.content == "w0 w1 w2"
        # Each replica's metrics are read on its own port; the load balancer does not show them.
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{nginx.base_url}/metrics")).status_code == 404
            scraped = [(await http.get(f"{r.base_url}/metrics")).text for r in survivors]
        assert sum(_nodes_here(text) for text in scraped) == NODES

        # The dead replica's periodic jobs move to a survivor within one lease.
        async def ledger_job_led() -> bool:
            leads = [await r.health() for r in survivors]
            return sum("ledger-holds" in h["leads"] for h in leads) == 1

        await wait_for_async(ledger_job_led, 15, "a survivor to lead the ledger upkeep")

        database = await Database.open(shared_database)
        try:
            # Holds of calls that died with their replica expire and are released by the leader.
            await wait_for_async(lambda: no_open_holds(database), 60, "stale holds to be released")
            async with database.session() as session:
                charged = dict((await session.execute(
                    select(LedgerTransaction.reference, LedgerTransaction.completion_tokens)
                    .where(LedgerTransaction.kind == "call")
                )).all())
            for result in results:
                billed = charged.get(f"call:{result.completion_id}")
                if result.error == "connection":
                    # Its replica died: never charged more than it could have received.
                    assert billed is None or billed >= result.tokens
                elif result.completion_id is not None:
                    assert billed == result.tokens, result
            books = await audit(database, 10, 20)
            assert books.unbalanced_transactions == 0
            assert books.balance_mismatches == 0
            assert books.negative_balances == 0
            assert books.reserved_total == 0 and books.open_holds == 0
            assert books.charges_not_matching_tokens == 0
            assert books.held_by_accounts == books.minted
        finally:
            await database.close()
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))
        await asyncio.gather(*(r.stop() for r in replicas))
        await nginx.stop()


async def _placed(replicas: list[Replica], nodes: int) -> bool:
    healths = []
    for replica in replicas:
        if not replica.alive:
            return False
        healths.append(await replica.health())
    return (
        sum(h["nodes"] for h in healths) == nodes
        and all(h["network_nodes"] == nodes for h in healths)
    )


def _nodes_here(exposition: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition) if family.name == "koretex_nodes"
        for sample in family.samples if sample.labels["connected"] == "here"
    )
