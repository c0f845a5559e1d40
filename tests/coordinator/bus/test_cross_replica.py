"""Two replicas on one PostgreSQL and one Redis: a consumer on one replica is served by a node
connected to the other, least-loaded over the whole network, and billed in the shared ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
from sqlalchemy import select
from support.ledger_audit import audit, no_open_holds
from support.replicas import (
    MODEL,
    REDIS_URL,
    Replica,
    api_key,
    client,
    scripted_node,
    start_replicas,
    wait_for_async,
)

from coordinator.bus import BusSettings
from coordinator.bus.redis import RedisBus
from coordinator.store.database import Database
from coordinator.store.models import LedgerTransaction
from protocol.ids import NodeId


async def network_nodes(replica: Replica) -> int:
    return int((await replica.health())["network_nodes"])


async def test_consumer_on_one_replica_node_on_another(
    tmp_path: Path, shared_database: str
) -> None:
    a, b = await start_replicas(tmp_path, shared_database, 2, KORETEX_QUEUE_WAIT_S="8")
    near = scripted_node([a.base_url], tmp_path / "near", "--delay", "0.05")
    far = scripted_node([b.base_url], tmp_path / "far", "--delay", "0.02")
    try:
        await far.start(wait=False)

        async def a_sees_far() -> bool:
            return await network_nodes(a) == 1 and (await a.health())["nodes"] == 0

        await wait_for_async(a_sees_far, 30, "replica a to see the node on replica b")
        consumer = client(a.base_url, await api_key(shared_database, "consumer"))
        raw = await consumer.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=12,
            stream=True, stream_options={"include_usage": True},
        )
        assert raw.headers["x-koretex-node"] == far.node_id
        text, usage, completion_id = [], None, ""
        async for chunk in raw.parse():
            completion_id = chunk.id
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        assert "".join(text) == " ".join(f"w{i}" for i in range(12))
        assert usage is not None and usage.completion_tokens == 12

        # A consumer who leaves frees the remote node at once: the cancel crosses to its owner.
        # (The node has one slot and the abandoned job would hold it for 20 s, longer than a
        # request may wait for a slot here.)
        long = await consumer.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "long"}], max_tokens=2000,
            stream=True,
        )
        read = 0
        async for chunk in long:
            read += bool(chunk.choices and chunk.choices[0].delta.content)
            if read == 3:
                break
        await long.close()
        short = await consumer.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "short"}], max_tokens=2,
        )
        assert short.choices[0].message.content == "w0 w1"

        # Least-loaded over the network: with a node on each replica, two concurrent requests
        # on replica a take one node each, the remote one included.
        await near.start(wait=False)
        await wait_for_async(lambda: _count(a, 2), 30, "both nodes to be routable from a")

        async def one(i: int) -> str:
            response = await consumer.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": f"q{i}"}], max_tokens=40,
                stream=True,
            )
            async for _ in response.parse():
                pass
            return response.headers["x-koretex-node"]

        served_by = await asyncio.gather(one(1), one(2))
        assert sorted(served_by) == sorted([near.node_id, far.node_id])

        database = await Database.open(shared_database)
        try:
            await wait_for_async(
                lambda: _settled(database, 5), 30, "the five calls to settle in the ledger"
            )
            await wait_for_async(
                lambda: no_open_holds(database), 30, "idle credit lines to go back"
            )
            async with database.session() as session:
                first = await session.scalar(select(LedgerTransaction).where(
                    LedgerTransaction.reference == f"call:{completion_id}"
                ))
            assert first is not None and first.completion_tokens == 12
            books = await audit(database, 10, 20)
            assert books.unbalanced_transactions == 0 and books.balance_mismatches == 0
            assert books.charges_not_matching_tokens == 0 and books.open_holds == 0
            assert books.held_by_accounts == books.minted
        finally:
            await database.close()
    finally:
        await asyncio.gather(near.stop(), far.stop())
        await asyncio.gather(a.stop(), b.stop())


async def _count(replica: Replica, nodes: int) -> bool:
    return await network_nodes(replica) == nodes


async def _settled(database: Database, calls: int) -> bool:
    async with database.session() as session:
        found = (await session.scalars(
            select(LedgerTransaction.id).where(LedgerTransaction.kind == "call")
        )).all()
    return len(found) >= calls


async def test_node_given_several_replicas_fails_over_to_the_next(
    tmp_path: Path, shared_database: str
) -> None:
    a, b = await start_replicas(tmp_path, shared_database, 2)
    node = scripted_node([a.base_url, b.base_url], tmp_path / "node")
    try:
        await node.start(wait=False)

        async def on(replica: Replica) -> bool:
            return replica.alive and (await replica.health())["nodes"] == 1

        await wait_for_async(lambda: on(a), 30, "the node to connect to the first replica")
        a.kill()
        await wait_for_async(lambda: on(b), 30, "the node to move to the second replica")
        consumer = client(b.base_url, await api_key(shared_database, "consumer"))
        done = await consumer.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
        )
        assert done.choices[0].message.content == "w0 w1"
    finally:
        await node.stop()
        await asyncio.gather(a.stop(), b.stop())


async def test_a_parked_node_stays_parked_on_its_next_replica(
    tmp_path: Path, shared_database: str
) -> None:
    a, b = await start_replicas(
        tmp_path, shared_database, 2, KORETEX_ROUTING__BREAKER_FAILURES="2",
        KORETEX_ROUTING__BREAKER_PARK_S="300", KORETEX_QUEUE_WAIT_S="1",
    )
    node = scripted_node([a.base_url, b.base_url], tmp_path / "node", "--fail-first", "1000")
    try:
        await node.start(wait=False)

        async def on(replica: Replica) -> bool:
            return replica.alive and (await replica.health())["nodes"] == 1

        await wait_for_async(lambda: on(a), 30, "the node to connect to the first replica")
        consumer = client(a.base_url, await api_key(shared_database, "consumer"))
        for _ in range(2):  # two failures park it
            with pytest.raises(openai.APIStatusError) as failed:
                await consumer.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                )
            assert failed.value.status_code == 502
        assert REDIS_URL is not None
        bus = RedisBus(REDIS_URL, BusSettings(prefix=a.env["KORETEX_BUS__PREFIX"]))
        try:
            async def shared() -> bool:
                return await bus.park_of(NodeId(node.node_id)) is not None

            await wait_for_async(shared, 10, "the park to be shared")
        finally:
            await bus.close()
        a.kill()
        await wait_for_async(lambda: on(b), 30, "the node to move to the second replica")
        consumer = client(b.base_url, await api_key(shared_database, "consumer-2"))
        with pytest.raises(openai.APIStatusError) as refused:
            await consumer.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
            )
        assert refused.value.status_code == 503  # parked: no capacity, not another failure
    finally:
        await node.stop()
        await asyncio.gather(a.stop(), b.stop())


async def test_a_node_its_owner_holds_back_from_paid_jobs_is_held_on_every_replica(
    tmp_path: Path, shared_database: str
) -> None:
    """The admission exam is its owner's to run; the others learn the hold from its presence."""
    a, b = await start_replicas(
        tmp_path, shared_database, 2, KORETEX_AUTHENTICITY__EXAM_CHECKS="3",
        KORETEX_QUEUE_WAIT_S="2",
    )
    # Scripted answers are no model's: the node sits its exam on b and never passes it.
    node = scripted_node([b.base_url], tmp_path / "node", "--delay", "0.01")
    try:
        await node.start(wait=False)

        async def a_sees_it() -> bool:
            return await network_nodes(a) == 1 and await network_nodes(b) == 1

        await wait_for_async(a_sees_it, 30, "both replicas to see the node")
        key = await api_key(shared_database, "consumer")
        for replica in (a, b):
            consumer = client(replica.base_url, key)
            assert [m.id for m in (await consumer.models.list()).data] == []
            with pytest.raises(openai.APIStatusError) as refused:
                await consumer.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                )
            assert refused.value.status_code == 503, replica.name
    finally:
        await node.stop()
        await asyncio.gather(a.stop(), b.stop())
