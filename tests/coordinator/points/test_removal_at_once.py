"""A fake verdict is stored at once, and the one that makes a node a persistent offender removes
it in the same transaction: a real coordinator (the identity settings at their defaults), real
enrolled agents and the real store; days pass on an injected clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator
from support.enrollment import signed_in

from coordinator.accounts.enrollment import EnrollmentRefused, enroll
from coordinator.accounts.enrollment import mint as mint_token
from coordinator.accounts.identity import EnrollmentLimits
from coordinator.clock import ShiftedClock
from coordinator.contributions import AuthenticityVerdict
from coordinator.points.keeper import REMOVED_REASON, PointsKeeper
from coordinator.store.models import Node
from coordinator.store.removals import NodeRemoval
from protocol.ids import ModelId, NodeId

MODEL = ModelId("smollm2-135m-instruct")  # the scripted agent's claim
EX_CONFIG = 78  # the agent's exit on a refusal for good


async def start(tmp_path: Path, database_url: str, clock: ShiftedClock) -> RunningCoordinator:
    return await start_coordinator(
        tmp_path / "coordinator", database_url=database_url, clock=clock, identity={},
        node_clock_skew_s=60 * 86_400.0,  # agents sign with the real time; the coordinator's moves
    )


async def token_for(coordinator: RunningCoordinator, account_id: int) -> str:
    services = coordinator.services
    async with services.database.session() as session, session.begin():
        minted = await mint_token(session, account_id, services.clock.now(), timedelta(hours=1))
    return minted.token


def keeper_of(coordinator: RunningCoordinator) -> PointsKeeper:
    keeper = coordinator.services.points
    assert isinstance(keeper, PointsKeeper)
    return keeper


def fake(clock: ShiftedClock, node_id: NodeId) -> AuthenticityVerdict:
    return AuthenticityVerdict(node_id=node_id, at=clock.now().timestamp(), model=MODEL,
                               genuine=False)


async def test_the_third_fake_verdict_removes_the_node_at_once_and_bars_its_operator(
    tmp_path: Path, database_url: str
) -> None:
    clock = ShiftedClock()
    coordinator = await start(tmp_path, database_url, clock)
    services, keeper = coordinator.services, keeper_of(coordinator)
    window = services.settings.points.constants.offender_window_days
    assert services.settings.points.constants.offender_fake_verdicts == 3
    account_id, _ = await signed_in(coordinator)
    token = await token_for(coordinator, account_id)
    cheat = AgentProcess.scripted(coordinator, tmp_path / "cheat", "--enrollment-token", token)
    agents = [cheat]
    try:
        await cheat.start()
        node_id = NodeId(cheat.node_id)
        assert not await keeper.record_fake(fake(clock, node_id))
        clock.advance(timedelta(days=window / 2 - 1))
        assert not await keeper.record_fake(fake(clock, node_id))
        assert services.hub.get(node_id) is not None, "two fake verdicts remove nobody"
        clock.advance(timedelta(days=window / 2 - 1))
        assert await keeper.record_fake(fake(clock, node_id)), "the third within the window"
        # At once: no refresh of the points history ran.
        assert services.refused_nodes[node_id] == REMOVED_REASON
        assert await cheat.wait_exit(30) == EX_CONFIG
        assert "removed from the network" in cheat.log_text()
        async with services.database.session() as session:
            removal = (await session.execute(
                select(NodeRemoval).where(NodeRemoval.node_id == node_id)
            )).scalar_one()
        assert removal.operator_account_id == account_id

        # The removal is stored: a replica that never heard of it refuses the node too.
        services.refused_nodes.clear()
        await cheat.start(wait=False)
        assert await cheat.wait_exit(30) == EX_CONFIG
        assert cheat.log_text().count("removed from the network") == 2

        # Its operator enrolls no new node for the offender window...
        fresh = AgentProcess.scripted(
            coordinator, tmp_path / "fresh", "--enrollment-token",
            await token_for(coordinator, account_id),
        )
        agents.append(fresh)
        await fresh.start(wait=False)
        assert await fresh.wait_exit(30) == EX_CONFIG
        assert "enroll no new node" in fresh.log_text()
        # ...and may again once it is over.
        clock.advance(timedelta(days=window, hours=1))
        later = AgentProcess.scripted(
            coordinator, tmp_path / "later", "--enrollment-token",
            await token_for(coordinator, account_id),
        )
        agents.append(later)
        await later.start()
    finally:
        for agent in agents:
            await agent.stop()
        await coordinator.stop()


async def test_fake_verdicts_further_apart_than_the_window_remove_nobody(
    tmp_path: Path, database_url: str
) -> None:
    clock = ShiftedClock()
    coordinator = await start(tmp_path, database_url, clock)
    services, keeper = coordinator.services, keeper_of(coordinator)
    window = services.settings.points.constants.offender_window_days
    node = AgentProcess.scripted(coordinator, tmp_path / "node")
    try:
        await node.start()
        node_id = NodeId(node.node_id)
        for _ in range(3):
            assert not await keeper.record_fake(fake(clock, node_id))
            clock.advance(timedelta(days=window / 2 + 1))
        assert services.hub.get(node_id) is not None
        assert node_id not in services.refused_nodes
    finally:
        await node.stop()
        await coordinator.stop()


async def test_an_account_enrolls_at_most_its_daily_limit_of_new_nodes(
    tmp_path: Path, database_url: str
) -> None:
    clock = ShiftedClock()
    coordinator = await start(tmp_path, database_url, clock)
    services = coordinator.services
    settings = services.settings
    limits = EnrollmentLimits(
        new_nodes_per_day=settings.identity.new_nodes_per_day_per_operator,
        offender_window=timedelta(days=settings.points.constants.offender_window_days),
    )
    account_id, _ = await signed_in(coordinator)
    per_day = limits.new_nodes_per_day
    try:
        now = clock.now()
        async with services.database.session() as session, session.begin():
            nodes = [
                Node(node_id=f"node-{number}", operator_account_id=None, first_seen=now,
                     last_seen=now, engine="scripted", models=[MODEL], hardware={})
                for number in range(per_day + 2)
            ]
            session.add_all(nodes)
        tokens = {}
        for node in nodes[:per_day]:
            tokens[node.node_id] = await token_for(coordinator, account_id)
            async with services.database.session() as session, session.begin():
                row = await session.get(Node, node.node_id)
                assert row is not None
                assert await enroll(session, row, tokens[node.node_id], now, limits) == account_id

        async def enroll_next(index: int) -> None:
            token = await token_for(coordinator, account_id)
            async with services.database.session() as session, session.begin():
                row = await session.get(Node, nodes[index].node_id)
                assert row is not None
                await enroll(session, row, token, clock.now(), limits)

        try:
            await enroll_next(per_day)
        except EnrollmentRefused as refused:
            assert "tomorrow" in refused.reason
        else:
            raise AssertionError("one node past the daily limit was enrolled")
        # A node already enrolled presents its token again on every reconnect: no new identity.
        async with services.database.session() as session, session.begin():
            row = await session.get(Node, nodes[0].node_id)
            assert row is not None
            await enroll(session, row, tokens[nodes[0].node_id], now, limits)
        clock.advance(timedelta(days=1, minutes=1))
        await enroll_next(per_day)
    finally:
        await coordinator.stop()
