"""Every successful answer names its node in ``X-Koretex-Node``, streamed or whole, of any length:
an empty answer (a stop string met by the very first token) too, and its node is paid and
observed like any other. Official client -> real coordinator -> real llama.cpp node."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from support.cluster import AgentProcess, RunningCoordinator

from coordinator.accounts.enrollment import node_earned
from coordinator.hub.observation import JobObservation
from coordinator.routing import Outcome

MODEL = "smollm2-135m-instruct"
PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Name three colours."}]


# The SmolLM2 tests share one coordinator and node per backend (tests/conftest.py); the scripted
# node's test has a network of its own.
@pytest.fixture
def coordinator(shared_coordinator: RunningCoordinator) -> RunningCoordinator:
    return shared_coordinator


@pytest.fixture
def smollm2_agent(shared_smollm2_agent: AgentProcess) -> AgentProcess:
    return shared_smollm2_agent


async def greedy_start(client: openai.AsyncOpenAI) -> str:
    """The first characters of the node's greedy answer: a stop string it meets at once."""
    whole = await client.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=4, temperature=0
    )
    text = whole.choices[0].message.content or ""
    assert text, "the greedy answer has a first token"
    return text[:1]


async def test_empty_answers_name_their_node_and_pay_it(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    services = coordinator.services
    client = await coordinator.client()
    stop = await greedy_start(client)
    seen: list[JobObservation] = []
    services.observers.append(seen.append)
    await services.ledger.flush()
    async with services.database.session() as db:
        earned_before = await node_earned(db, smollm2_agent.node_id)

    whole = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=PROMPT, max_tokens=8, temperature=0, stop=[stop]
    )
    assert whole.headers["X-Koretex-Node"] == smollm2_agent.node_id
    completion = whole.parse()
    assert completion.choices[0].message.content == ""
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0

    streamed = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=PROMPT, max_tokens=8, temperature=0, stop=[stop], stream=True,
        stream_options={"include_usage": True},
    )
    assert streamed.headers["X-Koretex-Node"] == smollm2_agent.node_id
    chunks = [chunk async for chunk in streamed.parse()]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"

    # Paid for the prompt it read, and observed as a success (routing, points, checks).
    await services.ledger.flush()
    async with services.database.session() as db:
        earned = await node_earned(db, smollm2_agent.node_id)
    assert earned > earned_before
    assert [(o.node_id, o.outcome) for o in seen] == [(smollm2_agent.node_id, Outcome.SUCCESS)] * 2


async def test_an_answer_whose_first_event_is_its_end_names_and_pays_its_node(
    own_coordinator: RunningCoordinator, tmp_path: Path
) -> None:
    coordinator = own_coordinator
    services = coordinator.services
    node = AgentProcess.scripted(coordinator, tmp_path / "empty", "--model", MODEL, "--no-tokens")
    await node.start()
    try:
        seen: list[JobObservation] = []
        services.observers.append(seen.append)
        client = await coordinator.client()
        whole = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=8
        )
        assert whole.headers["X-Koretex-Node"] == node.node_id
        completion = whole.parse()
        assert completion.choices[0].message.content == ""
        assert completion.usage is not None and completion.usage.completion_tokens == 0
        assert completion.usage.prompt_tokens == 7
        streamed = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=8, stream=True
        )
        assert streamed.headers["X-Koretex-Node"] == node.node_id
        reasons = [c.choices[0].finish_reason async for c in streamed.parse() if c.choices]
        assert reasons[-1] == "stop"
        await services.ledger.flush()
        async with services.database.session() as db:
            assert await node_earned(db, node.node_id) > 0
        assert [(o.node_id, o.outcome, o.tokens) for o in seen] == [
            (node.node_id, Outcome.SUCCESS, 0)
        ] * 2
    finally:
        await node.stop()


async def test_answers_of_any_length_name_their_node(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    for max_tokens in (1, 6):
        whole = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=max_tokens, temperature=0
        )
        assert whole.headers["X-Koretex-Node"] == smollm2_agent.node_id
        streamed = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=max_tokens, temperature=0, stream=True
        )
        assert streamed.headers["X-Koretex-Node"] == smollm2_agent.node_id
        async for _ in streamed.parse():
            pass
