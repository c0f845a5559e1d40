"""A node removed on one replica is gone from all of them at once: two real coordinators on one
PostgreSQL and one Redis, a real enrolled agent connected to the second, and the offender
threshold reached by verdicts the first one records (as re-scoring of a relayed paid job would)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.enrollment import mint, signed_in
from support.replicas import REDIS_URL

from coordinator.contributions import AuthenticityVerdict
from coordinator.points.keeper import REMOVED_REASON, PointsKeeper
from protocol.ids import ModelId, NodeId

MODEL = ModelId("smollm2-135m-instruct")  # the scripted agent's claim
EX_CONFIG = 78  # the agent's exit on a refusal for good


async def replica(directory: Path, database_url: str, prefix: str, name: str) -> RunningCoordinator:
    return await start_coordinator(
        directory / name, database_url=database_url, redis_url=REDIS_URL, identity={},
        bus={"prefix": prefix, "replica_id": name, "presence_ttl_s": 2.0,
             "presence_poll_s": 0.2, "job_lease_s": 3.0, "leader_lease_s": 3.0},
    )


async def test_a_removal_on_one_replica_disconnects_the_node_from_another(
    tmp_path: Path, shared_database: str
) -> None:
    prefix = f"test-{secrets.token_hex(6)}"
    a = await replica(tmp_path, shared_database, prefix, "a")
    b = await replica(tmp_path, shared_database, prefix, "b")
    _, session = await signed_in(b)
    token = (await mint(b, session))["token"]
    node = AgentProcess.scripted(b, tmp_path / "node", "--enrollment-token", token)
    try:
        await node.start()
        node_id = NodeId(node.node_id)
        await wait_for(lambda: node_id in a.services.remote_nodes, 30, "replica a to see the node")
        keeper = a.services.points
        assert isinstance(keeper, PointsKeeper)
        now = a.services.clock.now()
        removed = [
            await keeper.record_fake(AuthenticityVerdict(
                node_id=node_id, at=(now + timedelta(seconds=second)).timestamp(), model=MODEL,
                genuine=False,
            ))
            for second in range(3)
        ]
        assert removed == [False, False, True]
        assert a.services.refused_nodes[node_id] == REMOVED_REASON
        # b holds the connection: it hears of the removal in a's presence and drops the node.
        assert await node.wait_exit(30) == EX_CONFIG
        assert "removed from the network" in node.log_text()
        assert b.services.refused_nodes[node_id] == REMOVED_REASON
        await wait_for(lambda: node_id not in a.services.remote_nodes, 30, "a to drop the node")
        # Back, through the other replica, it is refused there as well.
        node.args[node.args.index("--coordinator") + 1] = a.base_url
        await node.start(wait=False)
        assert await node.wait_exit(30) == EX_CONFIG
        assert node.log_text().count("removed from the network") == 2
    finally:
        await node.stop()
        await a.stop()
        await b.stop()
