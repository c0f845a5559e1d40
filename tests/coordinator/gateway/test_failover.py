"""A gateway that survives every way a node can fail, driven through the official client.

Nodes are real agent processes around a scripted engine (tests/support/scripted_agent.py) that
fails on cue; the coordinator is the real one on a loopback port.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import openai
import pytest
import pytest_asyncio
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for

from coordinator.clock import ShiftedClock
from coordinator.routing import BreakerState, RoutingConstants

MODEL = "gemma-3-270m"
PROMPT = [{"role": "user", "content": "Hello"}]
REPLY = [f"w{i}" for i in range(1000)]
FULL_RAMP = RoutingConstants(ramp_start_fraction=1.0)

Spawn = Callable[..., Awaitable[AgentProcess]]


@pytest_asyncio.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Spawn]:
    agents: list[AgentProcess] = []

    async def start(coordinator: RunningCoordinator, *args: str) -> AgentProcess:
        agent = AgentProcess.scripted(coordinator, tmp_path / f"agent-{len(agents)}", *args)
        agents.append(agent)
        await agent.start()
        return agent

    yield start
    await asyncio.gather(*(agent.stop() for agent in agents))


async def stream_text(
    client: openai.AsyncOpenAI, max_tokens: int, on_token: Callable[[int], None] | None = None
) -> tuple[str, str | None, str]:
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=PROMPT,
        max_tokens=max_tokens,
        stream=True,  # type: ignore[arg-type]
    )
    node = raw.headers["X-Koretex-Node"]
    parts: list[str] = []
    finish = None
    async for chunk in raw.parse():
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
            if on_token is not None and chunk.choices[0].delta.content:
                on_token(len(parts))
    return "".join(parts), finish, node


async def test_failure_before_first_token_is_retried_invisibly(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    try:
        broken = await spawn(coordinator, "--fail-first", "1000", "--delay", "1")
        client = await coordinator.client()
        first = asyncio.create_task(
            client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=PROMPT,
                max_tokens=3,  # type: ignore[arg-type]
            )
        )
        await wait_for(lambda: broken.node_id in _busy_nodes(coordinator), 10, "job start")
        healthy = await spawn(coordinator)
        raw = await asyncio.wait_for(first, 20)
        assert raw.headers["X-Koretex-Node"] == healthy.node_id
        assert raw.parse().choices[0].message.content == "w0 w1 w2"
        services = coordinator.services
        wall_now = services.clock.now().timestamp()
        buckets = services.router.health_buckets(broken.node_id, wall_now=wall_now)  # type: ignore[arg-type]
        assert sum(b.failures for b in buckets) == 1
        for _ in range(3):  # the healthier node now wins every tie
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=PROMPT,
                max_tokens=3,  # type: ignore[arg-type]
            )
            assert raw.headers["X-Koretex-Node"] == healthy.node_id
    finally:
        await coordinator.stop()


async def test_retries_are_bounded_and_never_repeat_a_node(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    try:
        broken = [await spawn(coordinator, "--fail-first", "1000") for _ in range(4)]
        client = await coordinator.client()
        with pytest.raises(openai.APIStatusError) as failure:
            await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=3)  # type: ignore[arg-type]
        assert failure.value.status_code == 502
        services = coordinator.services
        wall_now = services.clock.now().timestamp()
        tries = [
            sum(b.failures for b in services.router.health_buckets(a.node_id, wall_now=wall_now))  # type: ignore[arg-type]
            for a in broken
        ]
        assert sorted(tries) == [0, 1, 1, 1], "one try plus two retries, each on a new node"
    finally:
        await coordinator.stop()


async def test_node_dying_mid_stream_is_resumed_seamlessly(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    try:
        dying = await spawn(coordinator, "--delay", "0.05")
        client = await coordinator.client()
        killed: list[int] = []
        standby: list[AgentProcess] = []

        def kill_after_five(count: int) -> None:
            if count >= 5 and standby and not killed:
                dying.signal(signal.SIGKILL)
                killed.append(count)

        async def start_standby() -> None:
            await wait_for(lambda: dying.node_id in _busy_nodes(coordinator), 10, "job start")
            standby.append(await spawn(coordinator, "--delay", "0.01"))

        text, finish, node = (await asyncio.gather(
            stream_text(client, 200, kill_after_five), start_standby()
        ))[0]
        assert killed, "the first node was killed mid-stream"
        assert node == dying.node_id
        assert text == " ".join(REPLY[:200]), "the consumer sees one unbroken answer"
        assert finish == "length"
        assert await dying.wait_exit(5) == -signal.SIGKILL
    finally:
        await coordinator.stop()


async def test_silent_node_is_detected_by_heartbeat_and_replaced(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c",
        database_url=database_url,
        routing=FULL_RAMP,
        inter_token_timeout_s=120.0,
        heartbeat_interval_s=2.0,
    )
    try:
        stalling = await spawn(coordinator, "--delay", "0.05")
        client = await coordinator.client()
        started: list[float] = []

        def stop_node_after_three(count: int) -> None:
            if count == 3 and not started:
                stalling.signal(signal.SIGSTOP)  # alive, socket open, but silent
                started.append(time.monotonic())

        task = asyncio.create_task(stream_text(client, 60, stop_node_after_three))
        await wait_for(lambda: bool(started), 10, "the node to be stopped")
        await spawn(coordinator, "--delay", "0.01")
        text, _finish, node = await asyncio.wait_for(task, 30)
        assert time.monotonic() - started[0] < 15
        assert node == stalling.node_id
        assert text == " ".join(REPLY[:60])
        assert coordinator.services.hub.get(stalling.node_id) is None  # type: ignore[arg-type]
    finally:
        await coordinator.stop()


async def test_inter_token_timeout_moves_the_stream_to_another_node(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        # The timeout must outlast starting the second node below, even on a busy machine.
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP, inter_token_timeout_s=4.0
    )
    try:
        stalling = await spawn(coordinator, "--stall-after", "4")
        client = await coordinator.client()
        task = asyncio.create_task(stream_text(client, 10))
        await wait_for(lambda: stalling.node_id in _busy_nodes(coordinator), 10, "job start")
        await spawn(coordinator)
        text, _, node = await asyncio.wait_for(task, 30)
        assert node == stalling.node_id
        assert text == " ".join(REPLY[:10])
    finally:
        await coordinator.stop()


async def test_first_token_timeout_retries_elsewhere(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP, first_token_timeout_s=1.0
    )
    try:
        slow = await spawn(coordinator, "--first-token-delay", "30")
        client = await coordinator.client()
        task = asyncio.create_task(
            client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=PROMPT,
                max_tokens=3,  # type: ignore[arg-type]
            )
        )
        await wait_for(lambda: slow.node_id in _busy_nodes(coordinator), 10, "job start")
        healthy = await spawn(coordinator)
        raw = await asyncio.wait_for(task, 20)
        assert raw.headers["X-Koretex-Node"] == healthy.node_id
    finally:
        await coordinator.stop()


async def test_busy_network_queues_briefly_then_answers_429_or_503(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c",
        database_url=database_url,
        routing=FULL_RAMP,
        queue_length=1,
        queue_wait_s=1.5,
    )
    try:
        await spawn(coordinator, "--delay", "0.1")
        client = await coordinator.client()
        running = asyncio.create_task(stream_text(client, 60))
        await wait_for(lambda: bool(_busy_nodes(coordinator)), 10, "the slot to fill")
        waiting = asyncio.create_task(
            client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        )
        await wait_for(lambda: coordinator.services.waiting.get(MODEL, 0) == 1, 5, "queueing")  # type: ignore[call-overload]
        with pytest.raises(openai.RateLimitError) as full:
            await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        assert full.value.code == "queue_full"
        assert int(full.value.response.headers["Retry-After"]) > 0
        began = time.monotonic()
        with pytest.raises(openai.InternalServerError) as unavailable:
            await waiting
        assert unavailable.value.status_code == 503
        assert "Retry-After" in unavailable.value.response.headers
        assert time.monotonic() - began < 3
        running.cancel()
    finally:
        await coordinator.stop()


async def test_consumer_errors_are_neutral_for_the_node(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    try:
        node = await spawn(coordinator)
        client = await coordinator.client()
        for _ in range(5):
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": "context overflow"}],
                )
        services = coordinator.services
        snapshot = services.router.snapshot(node.node_id, now=services.clock.monotonic())  # type: ignore[arg-type]
        assert snapshot.breaker_state is BreakerState.CLOSED
        wall_now = services.clock.now().timestamp()
        buckets = services.router.health_buckets(node.node_id, wall_now=wall_now)  # type: ignore[arg-type]
        assert sum(b.neutrals for b in buckets) == 5
        assert sum(b.failures for b in buckets) == 0
    finally:
        await coordinator.stop()


async def test_cancelled_stream_frees_the_slot_within_a_second(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    try:
        node = await spawn(coordinator, "--delay", "0.05")
        client = await coordinator.client()
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=PROMPT,
            max_tokens=500,
            stream=True,  # type: ignore[arg-type]
        )
        async for _ in stream:
            break
        await stream.close()
        closed_at = time.monotonic()
        services = coordinator.services
        live = services.hub.get(node.node_id)  # type: ignore[arg-type]
        await wait_for(lambda: not live.channels, 1.0, "the job to be cancelled")  # type: ignore[union-attr]
        assert time.monotonic() - closed_at <= 1.0
        snapshot = services.router.snapshot(node.node_id, now=services.clock.monotonic())  # type: ignore[arg-type]
        assert snapshot.in_flight == 0
        # and the node is free for the next request straight away
        text, _, _ = await stream_text(client, 3)
        assert text == "w0 w1 w2"
    finally:
        await coordinator.stop()


async def test_parked_node_gets_one_trial_after_park_time(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    clock = ShiftedClock()

    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, clock=clock, routing=FULL_RAMP
    )
    try:
        broken = await spawn(coordinator, "--fail-first", "3")
        client = await coordinator.client()
        router = coordinator.services.router
        node_id = broken.node_id

        def state() -> BreakerState:
            return router.snapshot(node_id, now=clock.monotonic()).breaker_state  # type: ignore[arg-type]

        for _ in range(3):
            with pytest.raises(openai.APIStatusError):
                await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        assert state() is BreakerState.PARKED
        with pytest.raises(openai.InternalServerError) as parked:
            await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        assert parked.value.status_code == 503
        clock.advance(timedelta(seconds=16))
        assert state() is BreakerState.HALF_OPEN
        ok = await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=2)  # type: ignore[arg-type]
        assert ok.choices[0].message.content == "w0 w1"
        assert state() is BreakerState.CLOSED
    finally:
        await coordinator.stop()


async def test_new_node_is_ramped_up_over_its_first_week(
    tmp_path: Path, database_url: str, spawn: Spawn
) -> None:
    clock = ShiftedClock()

    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, clock=clock
    )
    try:
        node = await spawn(coordinator, "--slots", "8")
        router = coordinator.services.router
        node_id = node.node_id
        snapshot = router.snapshot(node_id, now=clock.monotonic())  # type: ignore[arg-type]
        assert snapshot.slots == 8
        assert snapshot.admitted_capacity == 2  # 25 % of 8 on day one
        clock.advance(timedelta(days=7, minutes=1))
        router.refresh(now=clock.monotonic(), wall_now=clock.now().timestamp())
        assert router.snapshot(node_id, now=clock.monotonic()).admitted_capacity == 8  # type: ignore[arg-type]
    finally:
        await coordinator.stop()


async def test_network_constants_are_published(coordinator: RunningCoordinator) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        constants = (await http.get(f"{coordinator.base_url}/v1/network/constants")).json()
    assert constants["floor_tok_s"] == 5.0
    assert constants["breaker_failures"] == 3
    assert constants["breaker_window_s"] == 60.0
    assert constants["breaker_park_s"] == 15.0
    assert constants["health_window_days"] == 14
    assert constants["ramp_days"] == 7.0


def _busy_nodes(coordinator: RunningCoordinator) -> set[str]:
    return {node.node_id for node in coordinator.services.hub.nodes() if node.channels}
