"""Context that is true, end to end: the official openai client, the real coordinator and two
real SmolLM2 agents serving the model with different contexts (512 and 1024 tokens).

A prompt too long for the small node is answered by the large one; a request too long for both
is OpenAI's 400 ``context_length_exceeded``; ``/v1/models`` shows the largest live context; and
an omitted max_tokens generates up to the serving node's context, past the old 512.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import pytest_asyncio
from support.cluster import AgentProcess, RunningCoordinator, wait_for

from coordinator.hub.observation import JobObservation
from protocol.ids import ModelId, NodeId

MODEL = "smollm2-135m-instruct"
SMALL_CONTEXT, LARGE_CONTEXT = 512, 1024
CATALOGUE_CONTEXT = 8192  # the catalogue's figure for SmolLM2 (llama.context_length)


@dataclass
class TwoContexts:
    coordinator: RunningCoordinator
    small: AgentProcess
    large: AgentProcess


@pytest_asyncio.fixture
async def nodes(
    coordinator: RunningCoordinator, smollm2_path: Path, tmp_path: Path
) -> AsyncIterator[TwoContexts]:
    agents = [
        AgentProcess.llama(
            coordinator, smollm2_path, tmp_path / f"agent-{context}", slots=1,
            extra=["--context-length", str(context)],
        )
        for context in (SMALL_CONTEXT, LARGE_CONTEXT)
    ]
    try:
        for agent in agents:
            await agent.start()
        yield TwoContexts(coordinator, *agents)
    finally:
        for agent in agents:
            await agent.stop()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def listed_context(models: list[object]) -> dict[str, int]:
    return {m.id: (m.model_extra or {})["context_length"] for m in models}  # type: ignore[attr-defined]


async def stop_and_forget(nodes: TwoContexts, agent: AgentProcess) -> None:
    await agent.stop()
    hub = nodes.coordinator.services.hub
    await wait_for(lambda: hub.get(NodeId(agent.node_id)) is None, 30, "the node to leave")


async def test_requests_go_where_their_context_fits(nodes: TwoContexts) -> None:
    client = await nodes.coordinator.client()
    assert listed_context((await client.models.list()).data)[MODEL] == LARGE_CONTEXT
    assert listed_context([await client.models.retrieve(MODEL)])[MODEL] == LARGE_CONTEXT

    # ~700 tokens of prompt: more than the small node's whole context. Whichever node is picked
    # first, the large one answers (the small one refuses, neutrally, and the job moves on).
    long_prompt = user("word " * 700)
    for _ in range(4):
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=long_prompt, max_tokens=4, temperature=0  # type: ignore[arg-type]
        )
        assert raw.headers["X-Koretex-Node"] == nodes.large.node_id
        usage = raw.parse().usage
        assert usage is not None and SMALL_CONTEXT < usage.prompt_tokens < LARGE_CONTEXT

    # A short prompt with max_tokens beyond the small context is routed to the large one.
    for _ in range(4):
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=user("Name the capital of France."), max_tokens=600,
            temperature=0,  # type: ignore[arg-type]
        )
        assert raw.headers["X-Koretex-Node"] == nodes.large.node_id

    # Neither node's context holds ~1500 tokens: OpenAI's 400, and both nodes stay healthy.
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=MODEL, messages=user("word " * 1500), max_tokens=4,  # type: ignore[arg-type]
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
    assert f"maximum context length is {LARGE_CONTEXT} tokens" in error["message"]
    for agent in (nodes.small, nodes.large):
        snapshot = nodes.coordinator.snapshot(agent.node_id)
        assert snapshot.breaker_state.name == "CLOSED" and snapshot.in_flight == 0

    # A max_tokens no live context holds is refused before any node sees it.
    with pytest.raises(openai.BadRequestError) as too_many:
        await client.chat.completions.create(
            model=MODEL, messages=user("Hi"), max_tokens=LARGE_CONTEXT,  # type: ignore[arg-type]
        )
    error = too_many.value.body
    assert isinstance(error, dict) and error["code"] == "context_length_exceeded"
    assert (
        f"maximum context length is {LARGE_CONTEXT} tokens. However, you requested at least "
        f"{LARGE_CONTEXT + 1} tokens (at least 1 in the messages, {LARGE_CONTEXT} in the "
        "completion)"
    ) in error["message"]

    # With the large node gone, the largest live context is the small one's.
    await stop_and_forget(nodes, nodes.large)
    assert listed_context((await client.models.list()).data)[MODEL] == SMALL_CONTEXT
    with pytest.raises(openai.BadRequestError) as refused_small:
        await client.chat.completions.create(
            model=MODEL, messages=user("Hi"), max_tokens=600,  # type: ignore[arg-type]
        )
    assert f"maximum context length is {SMALL_CONTEXT} tokens" in str(refused_small.value)

    # No live node: the catalogue's figure for one model, and none in the live list.
    await stop_and_forget(nodes, nodes.small)
    assert MODEL not in listed_context((await client.models.list()).data)
    assert listed_context([await client.models.retrieve(MODEL)])[MODEL] == CATALOGUE_CONTEXT


async def test_an_omitted_max_tokens_generates_up_to_the_nodes_context(nodes: TwoContexts) -> None:
    """OpenAI's meaning of an unset max_tokens: the answer may fill the context (here, a
    sequence SmolLM2 continues greedily without ever ending its turn), not stop at 512."""
    services = nodes.coordinator.services
    seen: list[JobObservation] = []
    services.observers.append(seen.append)
    await stop_and_forget(nodes, nodes.small)
    client = await nodes.coordinator.client()
    prompt = user(
        "Continue this sequence without stopping: " + ", ".join(str(i) for i in range(1, 60))
    )
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=prompt, temperature=0  # type: ignore[arg-type]
    )
    answer = raw.parse()
    assert raw.headers["X-Koretex-Node"] == nodes.large.node_id
    assert answer.usage is not None
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens > 512
    assert answer.usage.prompt_tokens + answer.usage.completion_tokens == LARGE_CONTEXT
    (job,) = [o.job for o in seen if not o.probe and o.job.model == ModelId(MODEL)]
    floor = -(-len(prompt[0]["content"].encode()) // 128)
    assert job.fill_context
    assert job.params.max_tokens == LARGE_CONTEXT - floor  # the node's context - the prompt
