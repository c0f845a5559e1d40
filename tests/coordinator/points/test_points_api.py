"""The public points API on a real coordinator, from recorded contributions, on each database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from sqlalchemy import func, select
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.enrollment import mint, new_wallet, signed_in

from coordinator.lifecycles import PROBE_SCHEDULER
from coordinator.points.keeper import PointsKeeper
from coordinator.routing import RoutingConstants
from coordinator.store.models import ContributionRow
from protocol.ids import NodeId

MODEL = "smollm2-135m-instruct"
FULL_RAMP = RoutingConstants(ramp_start_fraction=1.0)
ROW_KEYS = {"rank", "provider", "tier", "points", "tok_s", "nodes", "jobs", "tokens"}
TERM_KEYS = {"uptime", "hardware", "model_value", "trust", "penalties"}


def keeper_of(coordinator: RunningCoordinator) -> PointsKeeper:
    keeper = coordinator.services.points
    assert keeper is not None
    return keeper


async def get(coordinator: RunningCoordinator, path: str, status: int = 200) -> Any:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        response = await http.get(path)
    assert response.status_code == status, response.text
    return response.json()


def assert_openai_error(body: Any, param: str | None = None) -> None:
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param


async def test_points_endpoints_from_recorded_history(tmp_path: Path, database_url: str) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    wallet = new_wallet()
    _, session = await signed_in(coordinator, wallet)
    token = (await mint(coordinator, session))["token"]
    agent = AgentProcess.scripted(coordinator, tmp_path / "a", "--enrollment-token", token)
    try:
        await agent.start()
        client = await coordinator.client()
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=20
        )
        task = coordinator.runner.app[PROBE_SCHEDULER].start_probe(NodeId(agent.node_id))
        assert task is not None and (await task) is not None
        keeper_of(coordinator).credit_online()  # as upkeep does: time connected so far
        await agent.stop()
        services = coordinator.services
        await wait_for(lambda: len(services.hub) == 0, 30, "the node to leave")
        keeper = keeper_of(coordinator)
        await keeper.refresh()

        board = await get(coordinator, "/v1/leaderboard?days=30")
        assert board["object"] == "list" and board["days"] == 30
        assert board["constants_version"] == coordinator.settings.points.constants.version
        [row] = board["data"]
        assert set(row) == ROW_KEYS
        assert row["rank"] == 1 and row["provider"] == wallet and row["nodes"] == 1
        assert row["jobs"] == 1 and row["tokens"] == 20
        assert row["tok_s"] is not None and row["tok_s"] > 0, "measured from arrivals"
        assert row["tier"] == "Bronze" and row["points"] > 0

        provider = await get(coordinator, f"/v1/providers/{wallet}?days=7")
        assert set(provider) == {"provider", "tier", "points", "hidden", "nodes"}
        assert provider["provider"] == wallet and provider["hidden"] is False
        assert provider["points"] == pytest.approx(row["points"])
        [node] = provider["nodes"]
        assert set(node) == {"node_id", "points", "tokens", "jobs", "measured_tok_s", "removed",
                             "days"}
        assert node["node_id"] == agent.node_id and node["tokens"] == 20 and not node["removed"]
        [day] = node["days"]
        assert set(day) == {"day", "score", "weighted_score", "terms"}
        assert set(day["terms"]) >= TERM_KEYS
        assert day["terms"]["probes_passed"] == 1 and day["terms"]["jobs_completed"] == 1
        assert 0 < day["terms"]["uptime"] <= 1 and day["terms"]["trust"] == pytest.approx(0.1)

        usage = await get(coordinator, "/v1/network/usage?days=3")
        assert usage["object"] == "list" and len(usage["data"]) == 3
        assert usage["data"][-1] == {"day": day["day"], "tokens": 20, "jobs": 1}
        assert usage["data"][0]["tokens"] == 0

        estimate = await get(coordinator, f"/v1/points/estimate?tok_s=80&model={MODEL}"
                                          "&uptime=0.9&days_online=14")
        assert set(estimate) == {"uptime", "hardware", "model_value", "trust", "tokens",
                                 "extra_models", "points_per_day", "points"}
        assert estimate["points"] == estimate["points_per_day"] > 0
        assert estimate["hardware"] == pytest.approx(80 ** 0.5) and estimate["trust"] == 1.0

        constants = await get(coordinator, "/v1/points/constants")
        assert constants["version"] == "1" and constants["tiers"][0]["name"] == "Bronze"
        assert constants["probe_interval_s"] == 60.0

        for path, param in (
            ("/v1/points/estimate?tok_s=-1&model=smollm2-135m-instruct", "tok_s"),
            ("/v1/points/estimate?tok_s=abc&model=smollm2-135m-instruct", "tok_s"),
            ("/v1/points/estimate?tok_s=10&model=smollm2-135m-instruct&uptime=2", "uptime"),
            ("/v1/points/estimate?tok_s=10&model=no-such-model", "model"),
            ("/v1/points/estimate?tok_s=10", "model"),
            ("/v1/points/estimate?model=smollm2-135m-instruct", "tok_s"),
            ("/v1/leaderboard?days=0", "days"),
            ("/v1/network/usage?days=x", "days"),
        ):
            assert_openai_error(await get(coordinator, path, 400), param)
        assert_openai_error(await get(coordinator, f"/v1/providers/{new_wallet()}", 404))

        # Nothing recorded ever changes: the history is append-only, down to the database.
        await keeper.flush(everything=True)
        async with services.database.session() as db:
            stored = await db.scalar(select(func.count()).select_from(ContributionRow))
        assert stored and stored > 0
        for statement in (
            sqlalchemy.update(ContributionRow).values(tokens=10**6),
            sqlalchemy.delete(ContributionRow),
        ):
            with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
                async with services.database.session() as db, db.begin():
                    await db.execute(statement)

        # A restart recomputes the same standings from the stored history alone.
        port = coordinator.port
        await coordinator.stop()
        coordinator = await start_coordinator(
            tmp_path / "c", database_url=database_url, routing=FULL_RAMP, port=port
        )
        assert await get(coordinator, "/v1/leaderboard?days=30") == board
        assert await get(coordinator, f"/v1/providers/{wallet}?days=7") == provider
        async with coordinator.services.database.session() as db:
            assert await db.scalar(select(func.count()).select_from(ContributionRow)) == stored
    finally:
        await agent.stop()
        await coordinator.stop()
