"""A node that dies mid-stream: the consumer's stream ends with an error event, never a hang."""

from __future__ import annotations

import asyncio
import signal

import openai
import pytest
from support.cluster import AgentProcess, RunningCoordinator, wait_for

MODEL = "smollm2-135m-instruct"


async def test_node_killed_mid_stream_ends_the_stream_with_an_error(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Tell a long story."}],
        max_tokens=400, stream=True,
    )
    received = 0
    with pytest.raises(openai.APIError) as failure:
        async with asyncio.timeout(30):
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received += 1
                    if received == 3:
                        smollm2_agent.signal(signal.SIGKILL)
    assert received >= 3
    assert "interrupted" in str(failure.value) or "failed" in str(failure.value)
    await wait_for(lambda: coordinator.services.hub.get(smollm2_agent.node_id) is None, 10)


async def test_consumer_leaving_cancels_the_job_on_the_node(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Tell a long story."}],
        max_tokens=400, stream=True,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    router, clock = coordinator.services.router, coordinator.services.clock
    node_id = smollm2_agent.node_id
    await wait_for(lambda: router.snapshot(node_id, now=clock.monotonic()).in_flight == 0, 2)  # type: ignore[arg-type]
    live = coordinator.services.hub.get(node_id)  # type: ignore[arg-type]
    assert live is not None and not live.channels
