"""A node SIGKILLed under steady load loses no request: each job it held (before its first token
or mid-answer) moves to the live node, queueing there when its slots are full.

Fifty trials, each with two live nodes: a survivor that stays for the whole test and a victim
forked for the trial (tests/support/node_zygote.py: real agent processes, link, session and
worker around the scripted engine) and SIGKILLed while eight requests are on their way.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletionMessageParam
from support.cluster import (
    AgentProcess,
    RunningCoordinator,
    start_coordinator,
    wait_for,
    write_node_key,
)
from support.node_zygote import NodeZygote

from coordinator.routing import RoutingConstants
from protocol.ids import NodeId

MODEL = "smollm2-135m-instruct"  # a chat model: scripted nodes say they serve it
PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
TRIALS = 50
REQUESTS = 8
PACE_S = 0.02  # between one request and the next: steady, not one burst
TOKENS = 5
REPLY = " ".join(f"w{i}" for i in range(TOKENS))


@pytest_asyncio.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[RunningCoordinator, AgentProcess]]:
    coordinator = await start_coordinator(
        tmp_path / "c", routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    survivor = AgentProcess.scripted(
        coordinator, tmp_path / "survivor", "--model", MODEL, "--slots", "2", "--delay", "0.01",
        "--finish-delay", "0.02",
    )
    try:
        await survivor.start()
        yield coordinator, survivor
    finally:
        await survivor.stop()
        await coordinator.stop()


async def ask(client: openai.AsyncOpenAI, i: int) -> tuple[str, str]:
    """One request, streamed or whole: the node its header names, and the whole text."""
    if i % 2:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=TOKENS
        )
        return raw.headers["X-Koretex-Node"], raw.parse().choices[0].message.content or ""
    streamed = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=PROMPT, max_tokens=TOKENS, stream=True
    )
    parts = [
        chunk.choices[0].delta.content or ""
        async for chunk in streamed.parse() if chunk.choices
    ]
    return streamed.headers["X-Koretex-Node"], "".join(parts)


@pytest.mark.timeout(240)
async def test_no_request_fails_when_a_node_is_killed_under_load(
    network: tuple[RunningCoordinator, AgentProcess], tmp_path: Path,
) -> None:
    coordinator, survivor = network
    hub = coordinator.services.hub
    client = await coordinator.client()
    zygote = NodeZygote(tmp_path / "zygote.log")
    rng = random.Random(15)
    failed: list[str] = []
    killed_holding = 0  # trials in which the victim held jobs when it died
    try:
        for trial in range(TRIALS):
            directory = tmp_path / f"victim-{trial}"
            directory.mkdir()
            victim = NodeId(write_node_key(directory / "node.key"))
            pid = zygote.spawn(
                directory / "node.key", directory / "agent.log",
                "--coordinator", coordinator.base_url, "--model", MODEL, "--slots", "2",
                "--delay", "0.01",
                "--first-token-delay", "0.08",
            )
            await wait_for(lambda v=victim: hub.get(v) is not None, 20, f"victim {trial}")

            async def request(i: int, trial: int = trial, victim: NodeId = victim) -> None:
                await asyncio.sleep(i * PACE_S)
                try:
                    node, text = await ask(client, i)
                except openai.APIError as exc:
                    failed.append(f"trial {trial} request {i}: {exc}")
                    return
                if node not in (victim, survivor.node_id) or text != REPLY:
                    failed.append(f"trial {trial} request {i}: {node!r} answered {text!r}")

            requests = [asyncio.create_task(request(i)) for i in range(REQUESTS)]
            live = hub.get(victim)
            assert live is not None
            await wait_for(lambda live=live: bool(live.channels), 10, "the victim's first job")
            await asyncio.sleep(rng.uniform(0.0, 0.12))  # before its first token, or during
            killed_holding += bool(live.channels)
            os.kill(pid, signal.SIGKILL)
            await asyncio.gather(*requests)
            await wait_for(lambda v=victim: hub.get(v) is None, 10, "the victim to be gone")
    finally:
        zygote.stop()
    assert not failed, f"{len(failed)} of {TRIALS * REQUESTS} requests failed: {failed[:5]}"
    assert killed_holding >= TRIALS // 2, "the victim died holding jobs in most trials"
    assert coordinator.snapshot(survivor.node_id).in_flight == 0
