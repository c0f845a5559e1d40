"""Bounties are recomputed once across replicas, from the whole network: two real replicas on
one PostgreSQL and one Redis; only the leader writes (under its epoch), every replica serves
the same figures, and when the leader is SIGKILLed the other takes over under a higher epoch,
while a late write from the dead term is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from support.replicas import (
    MODEL,
    Replica,
    api_key,
    client,
    scripted_node,
    start_replicas,
    wait_for_async,
)

from coordinator.economy.bounties import ModelBounty
from coordinator.economy.bounty_keeper import load_bounties, store_bounties
from coordinator.store.database import Database

NODE_TOK_S = 12.0


async def bounties(replica: Replica) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=replica.base_url, timeout=5) as http:
        reply = await http.get("/v1/network/bounties")
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


def entry(body: dict[str, Any]) -> dict[str, Any]:
    (found,) = [e for e in body["data"] if e["model"] == MODEL]
    return found


async def leaders(replicas: list[Replica]) -> list[Replica]:
    return [r for r in replicas if r.alive and "bounties" in (await r.health())["leads"]]


async def test_one_leader_recomputes_and_another_takes_over(
    tmp_path: Path, shared_database: str
) -> None:
    replicas = await start_replicas(
        tmp_path, shared_database, 2,
        KORETEX_ECONOMY__BOUNTIES__INTERVAL_S="0.2",
        KORETEX_ECONOMY__BOUNTIES__REFRESH_S="0.1",
        KORETEX_ECONOMY__BOUNTIES__TARGET_UTILISATION="0.001",
        KORETEX_ECONOMY__BOUNTIES__WINDOW_S="60",
    )
    database = await Database.open(shared_database)
    node = None
    try:
        found: list[Replica] = []

        async def one_leader() -> bool:
            found[:] = await leaders(replicas)
            return len(found) == 1

        await wait_for_async(one_leader, 20, "one replica to lead the bounties")
        leader = found[0]
        (follower,) = [r for r in replicas if r is not leader]

        # The node is on the follower: the leader counts it through the network-wide view.
        node = scripted_node(
            [follower.base_url], tmp_path / "node", "--delay", "0.05",
            "--declared-tok-s", str(NODE_TOK_S),
        )
        await node.start(wait=False)

        async def capacity_seen_everywhere() -> bool:
            shown = [entry(await bounties(r))["capacity_tok_s"] for r in replicas]
            return shown == [NODE_TOK_S] * 2

        await wait_for_async(capacity_seen_everywhere, 30, "both replicas to show the node")

        # Demand settled through the leader's gateway (relayed to the follower's node).
        consumer = client(leader.base_url, await api_key(shared_database, "alice"))
        await consumer.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8
        )

        async def raised_everywhere() -> bool:
            shown = [entry(await bounties(r))["multiplier"] for r in replicas]
            return min(shown) > 1.0

        await wait_for_async(raised_everywhere, 20, "both replicas to pay a bounty")
        stored, _, first_epoch = await load_bounties(database)
        assert {b.model for b in stored} >= {MODEL}
        assert [(await bounties(r))["epoch"] for r in replicas] == [first_epoch] * 2
        assert len(await leaders(replicas)) == 1
        assert f"leading bounties (epoch {first_epoch})" in leader.log_text()
        assert "leading bounties" not in follower.log_text()

        # The leader dies: its lease lapses and the follower recomputes under a higher epoch.
        killed_at = datetime.now(UTC)
        leader.kill()

        async def taken_over() -> bool:
            body = await bounties(follower)
            return (
                body["epoch"] > first_epoch and body["computed_at"] is not None
                and datetime.fromisoformat(body["computed_at"]) > killed_at
            )

        await wait_for_async(taken_over, 20, "the follower to take the bounties over")
        assert await leaders(replicas) == [follower]
        stored, _, second_epoch = await load_bounties(database)
        assert second_epoch > first_epoch
        assert entry(await bounties(follower))["multiplier"] > 1.0  # the demand is still there

        # A write from the dead leader's term, arriving late, changes nothing.
        await store_bounties(
            database, [ModelBounty(MODEL, 1.0, 0.0, 99.0)], computed_at=datetime.now(UTC),
            epoch=first_epoch,
        )
        stored, _, epoch = await load_bounties(database)
        kept = {b.model: b for b in stored}[MODEL]
        assert epoch >= second_epoch and kept.multiplier > 1.0 and kept.capacity_tok_s != 99.0
    finally:
        if node is not None:
            await node.stop()
        for replica in replicas:
            await replica.stop()
        await database.close()
