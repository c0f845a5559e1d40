"""A fake verdict given on one replica quarantines a node connected to another: two real
coordinators on one PostgreSQL and one Redis at the integrity defaults, a real honest SmolLM2
agent enrolled on the second. The first judges one of its answers fake (as re-scoring a relayed
paid job would); the owner quarantines it and re-examines it, and both replicas route paid jobs
to it again once it passes."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.enrollment import mint, signed_in
from support.replicas import REDIS_URL

from protocol.ids import ModelId, NodeId

pytestmark = pytest.mark.slow

MODEL = ModelId("smollm2-135m-instruct")


async def replica(directory: Path, database_url: str, prefix: str, name: str) -> RunningCoordinator:
    return await start_coordinator(
        directory / name, database_url=database_url, redis_url=REDIS_URL,
        probes={"enabled": True}, authenticity={}, identity={},
        bus={"prefix": prefix, "replica_id": name, "presence_ttl_s": 2.0,
             "presence_poll_s": 0.2, "job_lease_s": 3.0, "leader_lease_s": 3.0},
    )


async def test_a_fake_verdict_on_one_replica_quarantines_the_node_on_its_owner(
    tmp_path: Path, shared_database: str, smollm2_path: Path
) -> None:
    prefix = f"test-{secrets.token_hex(6)}"
    a = await replica(tmp_path, shared_database, prefix, "a")
    b = await replica(tmp_path, shared_database, prefix, "b")
    _, session = await signed_in(b)
    token = (await mint(b, session))["token"]
    agent = AgentProcess.llama(b, smollm2_path, tmp_path / "node",
                               extra=["--enrollment-token", token])
    heard: list[bool] = []
    held: list[bool] = []  # after each verdict: whether the owner then held it from paid jobs
    record = b.services.admission.verdict

    def spy(node_id: NodeId, model: ModelId, *, genuine: bool) -> None:
        heard.append(genuine)
        record(node_id, model, genuine=genuine)
        held.append(not b.services.router.paid_eligible(node_id, model))

    b.services.admission.verdict = spy  # type: ignore[method-assign]
    try:
        await agent.start()
        node_id = NodeId(agent.node_id)
        await wait_for(lambda: node_id in a.services.remote_nodes
                       and a.services.router.paid_eligible(node_id, MODEL), 120,
                       "the node to pass its exam, as both replicas see it")
        passes = len(heard)
        assert passes >= 3 and all(heard)
        a.services.admission.verdict(node_id, MODEL, genuine=False)
        await wait_for(lambda: False in heard, 30, "the owner to hear of the fake verdict")
        assert heard.index(False) == passes or all(heard[passes:heard.index(False)])
        assert held[heard.index(False)], "quarantined at once"
        # Quarantined, it sits the whole exam again before it is paid, on either replica.
        await wait_for(lambda: heard[heard.index(False) + 1:].count(True) >= 3
                       and a.services.router.paid_eligible(node_id, MODEL), 120,
                       "a full re-exam, seen from both replicas")
        assert b.services.router.paid_eligible(node_id, MODEL)
    finally:
        await agent.stop()
        await a.stop()
        await b.stop()
