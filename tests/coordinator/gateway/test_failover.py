"""A gateway that survives every way a node can fail, driven through the official client.

Nodes are real agent processes around a scripted engine (tests/support/scripted_agent.py) that
fails on cue; the coordinator is the real one on a loopback port.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for

from coordinator.clock import ShiftedClock
from coordinator.routing import BreakerState, HealthBucket, RoutingConstants
from protocol.ids import NodeId

MODEL = "smollm2-135m-instruct"
PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
REPLY = [f"w{i}" for i in range(1000)]
FULL_RAMP = RoutingConstants(ramp_start_fraction=1.0)


@dataclass
class Network:
    """One coordinator under test and the scripted nodes started against it."""

    directory: Path
    database_url: str
    agents: list[AgentProcess] = field(default_factory=list)
    running: RunningCoordinator | None = None

    async def start(
        self, *, clock: ShiftedClock | None = None, **settings: Any
    ) -> RunningCoordinator:
        """Start the coordinator; every node is admitted at full capacity unless ``routing``
        says otherwise."""
        settings.setdefault("routing", FULL_RAMP)
        self.running = await start_coordinator(
            self.directory / "c", database_url=self.database_url, clock=clock, **settings
        )
        return self.running

    async def spawn(self, *args: str) -> AgentProcess:
        """A registered scripted node; ``args`` are the scripted agent's fault cues."""
        assert self.running is not None, "start the coordinator first"
        agent = AgentProcess.scripted(
            self.running, self.directory / f"agent-{len(self.agents)}", *args
        )
        self.agents.append(agent)
        await agent.start()
        return agent

    async def stop(self) -> None:
        if self.running is not None:
            await self.running.stop()
        await asyncio.gather(*(agent.stop() for agent in self.agents))


@pytest_asyncio.fixture
async def network(tmp_path: Path, database_url: str) -> AsyncIterator[Network]:
    started = Network(tmp_path, database_url)
    try:
        yield started
    finally:
        await started.stop()


# --- what a consumer does -------------------------------------------------------------------------


async def complete(client: openai.AsyncOpenAI, max_tokens: int) -> ChatCompletion:
    return await client.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=max_tokens
    )


async def answer(client: openai.AsyncOpenAI, max_tokens: int = 3) -> tuple[str, str | None]:
    """The node that answered (from the gateway's header) and the answer's text."""
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=PROMPT, max_tokens=max_tokens
    )
    return raw.headers["X-Koretex-Node"], raw.parse().choices[0].message.content


async def stream_text(
    client: openai.AsyncOpenAI, max_tokens: int, on_token: Callable[[int], None] | None = None
) -> tuple[str, str | None, str]:
    """A streamed answer's text, finish reason and first node; ``on_token`` sees each count."""
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=PROMPT, max_tokens=max_tokens, stream=True
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


def reply(tokens: int) -> str:
    """What the scripted engine says in ``tokens`` tokens."""
    return " ".join(REPLY[:tokens])


# --- what the coordinator knows -------------------------------------------------------------------


def busy_nodes(coordinator: RunningCoordinator) -> set[str]:
    return {node.node_id for node in coordinator.services.hub.nodes() if node.channels}


async def wait_until_busy(coordinator: RunningCoordinator, node: AgentProcess) -> None:
    await wait_for(lambda: node.node_id in busy_nodes(coordinator), 10, "job start")


def failures(coordinator: RunningCoordinator, node: AgentProcess) -> int:
    """Failures in the node's health window."""
    return sum(bucket.failures for bucket in _health(coordinator, node))


def neutrals(coordinator: RunningCoordinator, node: AgentProcess) -> int:
    """Outcomes in the node's health window that were the consumer's fault, not the node's."""
    return sum(bucket.neutrals for bucket in _health(coordinator, node))


def _health(coordinator: RunningCoordinator, node: AgentProcess) -> tuple[HealthBucket, ...]:
    services = coordinator.services
    wall_now = services.clock.now().timestamp()
    return services.router.health_buckets(NodeId(node.node_id), wall_now=wall_now)


# --- the specification ----------------------------------------------------------------------------


async def test_failure_before_first_token_is_retried_invisibly(network: Network) -> None:
    coordinator = await network.start()
    # It fails only after 5 s: time for the healthy node, started once it is busy, to register
    # even on a loaded machine (with no other node live, the retry would have nowhere to go).
    broken = await network.spawn("--fail-first", "1000", "--delay", "5")
    client = await coordinator.client()
    first = asyncio.create_task(answer(client))
    await wait_until_busy(coordinator, broken)
    healthy = await network.spawn()
    assert await asyncio.wait_for(first, 20) == (healthy.node_id, "w0 w1 w2")
    assert failures(coordinator, broken) == 1
    for _ in range(3):  # the healthier node now wins every tie
        node, _text = await answer(client)
        assert node == healthy.node_id


async def test_retries_are_bounded_and_never_repeat_a_node(network: Network) -> None:
    coordinator = await network.start()
    broken = [await network.spawn("--fail-first", "1000") for _ in range(4)]
    client = await coordinator.client()
    with pytest.raises(openai.APIStatusError) as failure:
        await complete(client, 3)
    assert failure.value.status_code == 502
    tries = [failures(coordinator, node) for node in broken]
    assert sorted(tries) == [0, 1, 1, 1], "one try plus two retries, each on a new node"


async def test_node_dying_mid_stream_is_resumed_seamlessly(network: Network) -> None:
    coordinator = await network.start()
    dying = await network.spawn("--delay", "0.05")
    client = await coordinator.client()
    killed: list[int] = []
    standby: list[AgentProcess] = []

    def kill_after_five(count: int) -> None:
        if count >= 5 and standby and not killed:
            dying.signal(signal.SIGKILL)
            killed.append(count)

    async def start_standby() -> None:
        await wait_until_busy(coordinator, dying)
        standby.append(await network.spawn("--delay", "0.01"))

    text, finish, node = (await asyncio.gather(
        stream_text(client, 200, kill_after_five), start_standby()
    ))[0]
    assert killed, "the first node was killed mid-stream"
    assert node == dying.node_id
    assert text == reply(200), "the consumer sees one unbroken answer"
    assert finish == "length"
    assert await dying.wait_exit(5) == -signal.SIGKILL


async def test_silent_node_is_detected_by_heartbeat_and_replaced(network: Network) -> None:
    coordinator = await network.start(inter_token_timeout_s=120.0, heartbeat_interval_s=2.0)
    stalling = await network.spawn("--delay", "0.05")
    client = await coordinator.client()
    started: list[float] = []

    def stop_node_after_three(count: int) -> None:
        if count == 3 and not started:
            stalling.signal(signal.SIGSTOP)  # alive, socket open, but silent
            started.append(time.monotonic())

    task = asyncio.create_task(stream_text(client, 60, stop_node_after_three))
    await wait_for(lambda: bool(started), 10, "the node to be stopped")
    await network.spawn("--delay", "0.01")
    text, _finish, node = await asyncio.wait_for(task, 30)
    assert time.monotonic() - started[0] < 15
    assert node == stalling.node_id
    assert text == reply(60)
    assert coordinator.services.hub.get(NodeId(stalling.node_id)) is None


async def test_inter_token_timeout_moves_the_stream_to_another_node(network: Network) -> None:
    # The timeout must outlast starting the second node below, even on a busy machine.
    coordinator = await network.start(inter_token_timeout_s=4.0)
    stalling = await network.spawn("--stall-after", "4")
    client = await coordinator.client()
    task = asyncio.create_task(stream_text(client, 10))
    await wait_until_busy(coordinator, stalling)
    await network.spawn()
    text, _, node = await asyncio.wait_for(task, 30)
    assert node == stalling.node_id
    assert text == reply(10)


async def test_first_token_timeout_retries_elsewhere(network: Network) -> None:
    coordinator = await network.start(first_token_timeout_s=1.0)
    slow = await network.spawn("--first-token-delay", "30")
    client = await coordinator.client()
    task = asyncio.create_task(answer(client))
    await wait_until_busy(coordinator, slow)
    healthy = await network.spawn()
    node, _text = await asyncio.wait_for(task, 20)
    assert node == healthy.node_id


async def test_busy_network_queues_briefly_then_answers_429_or_503(network: Network) -> None:
    coordinator = await network.start(queue_length=1, queue_wait_s=1.5)
    await network.spawn("--delay", "0.1")
    client = await coordinator.client()
    running = asyncio.create_task(stream_text(client, 60))
    await wait_for(lambda: bool(busy_nodes(coordinator)), 10, "the slot to fill")
    waiting = asyncio.create_task(complete(client, 2))
    await wait_for(lambda: coordinator.services.waiting.get(MODEL, 0) == 1, 5, "queueing")  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError) as full:
        await complete(client, 2)
    assert full.value.code == "queue_full"
    assert int(full.value.response.headers["Retry-After"]) > 0
    began = time.monotonic()
    with pytest.raises(openai.InternalServerError) as unavailable:
        await waiting
    assert unavailable.value.status_code == 503
    assert "Retry-After" in unavailable.value.response.headers
    assert time.monotonic() - began < 3
    running.cancel()


async def test_consumer_errors_are_neutral_for_the_node(network: Network) -> None:
    coordinator = await network.start()
    node = await network.spawn()
    client = await coordinator.client()
    for _ in range(5):
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "context overflow"}]
            )
    assert coordinator.snapshot(node.node_id).breaker_state is BreakerState.CLOSED
    assert neutrals(coordinator, node) == 5
    assert failures(coordinator, node) == 0


async def test_cancelled_stream_frees_the_slot_within_a_second(network: Network) -> None:
    coordinator = await network.start()
    node = await network.spawn("--delay", "0.05")
    client = await coordinator.client()
    stream = await client.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=500, stream=True
    )
    async for _ in stream:
        break
    await stream.close()
    closed_at = time.monotonic()
    live = coordinator.services.hub.get(NodeId(node.node_id))
    assert live is not None
    await wait_for(lambda: not live.channels, 1.0, "the job to be cancelled")
    assert time.monotonic() - closed_at <= 1.0
    assert coordinator.snapshot(node.node_id).in_flight == 0
    # and the node is free for the next request straight away
    text, _, _ = await stream_text(client, 3)
    assert text == "w0 w1 w2"


async def test_parked_node_gets_one_trial_after_park_time(network: Network) -> None:
    clock = ShiftedClock()
    coordinator = await network.start(clock=clock)
    broken = await network.spawn("--fail-first", "3")
    client = await coordinator.client()

    def state() -> BreakerState:
        return coordinator.snapshot(broken.node_id).breaker_state

    for _ in range(3):
        with pytest.raises(openai.APIStatusError):
            await complete(client, 2)
    assert state() is BreakerState.PARKED
    with pytest.raises(openai.InternalServerError) as parked:
        await complete(client, 2)
    assert parked.value.status_code == 503
    clock.advance(timedelta(seconds=16))
    assert state() is BreakerState.HALF_OPEN
    ok = await complete(client, 2)
    assert ok.choices[0].message.content == "w0 w1"
    assert state() is BreakerState.CLOSED


async def test_new_node_is_ramped_up_over_its_first_week(network: Network) -> None:
    clock = ShiftedClock()
    coordinator = await network.start(clock=clock, routing=RoutingConstants())
    node = await network.spawn("--slots", "8")
    first_day = coordinator.snapshot(node.node_id)
    assert first_day.slots == 8
    assert first_day.admitted_capacity == 2  # 25 % of 8 on day one
    clock.advance(timedelta(days=7, minutes=1))
    router = coordinator.services.router
    router.refresh(now=clock.monotonic(), wall_now=clock.now().timestamp())
    assert coordinator.snapshot(node.node_id).admitted_capacity == 8


async def test_network_constants_are_published(coordinator: RunningCoordinator) -> None:
    async with httpx.AsyncClient() as http:
        constants = (await http.get(f"{coordinator.base_url}/v1/network/constants")).json()
    assert constants["floor_tok_s"] == 5.0
    assert constants["breaker_failures"] == 3
    assert constants["breaker_window_s"] == 60.0
    assert constants["breaker_park_s"] == 15.0
    assert constants["health_window_days"] == 14
    assert constants["ramp_days"] == 7.0
