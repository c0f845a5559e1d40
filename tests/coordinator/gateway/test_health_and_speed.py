"""Routing state that outlives a request: measured speed against the floor, and persisted health."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from support.cluster import AgentProcess, start_coordinator, wait_for

from coordinator.routing import RoutingConstants

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Hello"}]
FULL_RAMP = RoutingConstants(ramp_start_fraction=1.0)


async def test_node_measured_below_the_floor_stops_getting_work(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP, queue_wait_s=0.5
    )
    slow = AgentProcess.scripted(coordinator, tmp_path / "slow", "--delay", "0.3")
    try:
        await slow.start()
        client = await coordinator.client()
        services = coordinator.services
        snapshot = services.router.snapshot(slow.node_id, now=services.clock.monotonic())  # type: ignore[arg-type]
        assert snapshot.candidate and snapshot.measured_tok_s is None  # admitted until measured
        await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=10)  # type: ignore[arg-type]
        snapshot = services.router.snapshot(slow.node_id, now=services.clock.monotonic())  # type: ignore[arg-type]
        assert snapshot.measured_tok_s is not None
        assert 2.0 < snapshot.measured_tok_s < 5.0, "measured by the coordinator from arrivals"
        assert not snapshot.candidate
        with pytest.raises(openai.InternalServerError) as unavailable:
            await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        assert unavailable.value.status_code == 503
    finally:
        await slow.stop()
        await coordinator.stop()


async def test_health_window_survives_a_coordinator_restart(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    port = coordinator.port
    node = AgentProcess.scripted(coordinator, tmp_path / "node")
    try:
        await node.start()
        client = await coordinator.client()
        for _ in range(3):
            await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        await coordinator.stop()

        coordinator = await start_coordinator(
            tmp_path / "c", database_url=database_url, routing=FULL_RAMP, port=port
        )
        node.coordinator = coordinator
        await node.wait_registered(30)
        services = coordinator.services
        wall_now = services.clock.now().timestamp()
        buckets = services.router.health_buckets(node.node_id, wall_now=wall_now)  # type: ignore[arg-type]
        assert sum(b.successes for b in buckets) == 3
        await wait_for(lambda: True, 1)
    finally:
        await node.stop()
        await coordinator.stop()
