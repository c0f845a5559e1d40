"""``POST /v1/messages`` through the official ``anthropic`` client, unchanged, against the real
coordinator and a real SmolLM2 agent: a message whole and streamed, a tool round trip, token
counting, Anthropic's error shape, and the books adding up across the doors."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import pytest
from support.cluster import AgentProcess, RunningCoordinator
from support.ledger_audit import audit

MODEL = "smollm2-135m-instruct"


# Every test here asks the node as a consumer of its own and leaves it idle: one coordinator and
# SmolLM2 node per backend serve the whole module (tests/conftest.py), so a test counts the calls
# the books gained while it ran.
@pytest.fixture
def coordinator(shared_coordinator: RunningCoordinator) -> RunningCoordinator:
    return shared_coordinator


@pytest.fixture
def smollm2_agent(shared_smollm2_agent: AgentProcess) -> AgentProcess:
    return shared_smollm2_agent


QUESTION: Any = [{"role": "user", "content": "Name the capital of France."}]
WEATHER: Any = {
    "name": "get_weather", "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                     "required": ["city"], "additionalProperties": False},
}


async def client_for(coordinator: RunningCoordinator) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=await coordinator.api_key(), base_url=coordinator.base_url, max_retries=0,
    )


async def test_a_message_whole_and_streamed(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    services = coordinator.services
    price = services.catalogue.get(MODEL)
    assert price is not None
    await services.ledger.flush()
    before = await audit(services.database, price.price.input_per_1m, price.price.output_per_1m)
    client = await client_for(coordinator)
    message = await client.messages.create(
        model=MODEL, max_tokens=16, messages=QUESTION, extra_body={"temperature": 0},
        system="Answer in one short sentence.",
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.stop_reason in ("end_turn", "max_tokens")
    [block] = message.content
    assert block.type == "text" and "Paris" in block.text
    assert message.usage.input_tokens > 5 and 1 <= message.usage.output_tokens <= 16

    async with client.messages.stream(
        model=MODEL, max_tokens=16, messages=QUESTION, extra_body={"temperature": 0},
        system="Answer in one short sentence.",
    ) as stream:
        streamed = "".join([text async for text in stream.text_stream])
        final = await stream.get_final_message()
    assert streamed == block.text
    assert final.stop_reason == message.stop_reason
    assert final.usage.output_tokens == message.usage.output_tokens

    counted = await client.messages.count_tokens(
        model=MODEL, messages=QUESTION, system="Answer in one short sentence.",
    )
    assert counted.input_tokens == message.usage.input_tokens

    await services.ledger.flush()
    books = await audit(services.database, price.price.input_per_1m, price.price.output_per_1m)
    assert books.calls - before.calls == 2  # the count is not billed
    assert books.unbalanced_transactions == 0 and books.balance_mismatches == 0
    assert books.charges_not_matching_tokens == 0 and books.held_by_accounts == books.minted


async def test_an_output_format_is_enforced(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await client_for(coordinator)
    schema = {"type": "object", "properties": {"capital": {"enum": ["Paris", "Rome"]},
                                               "country": {"type": "string", "maxLength": 20}},
              "required": ["capital", "country"], "additionalProperties": False}
    message = await client.messages.create(
        model=MODEL, max_tokens=40, messages=QUESTION,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    [block] = message.content
    assert block.type == "text"
    jsonschema.validate(json.loads(block.text), schema)


async def test_a_tool_round_trip_whole_and_streamed(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await client_for(coordinator)
    ask: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = await client.messages.create(
        model=MODEL, max_tokens=60, messages=ask, tools=[WEATHER], extra_body={"temperature": 0},
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert first.stop_reason == "tool_use", first.content
    [use] = [block for block in first.content if block.type == "tool_use"]
    assert use.name == "get_weather" and use.id.startswith("toolu_")
    jsonschema.validate(use.input, WEATHER["input_schema"])

    follow_up: Any = [
        *ask,
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": "21 degrees, sunny"},
        ]},
    ]
    async with client.messages.stream(
        model=MODEL, max_tokens=60, messages=follow_up, tools=[WEATHER],
        extra_body={"temperature": 0},
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason in ("end_turn", "tool_use", "max_tokens")
    if final.stop_reason == "end_turn":
        [text] = final.content
        assert text.type == "text" and text.text
    if final.stop_reason == "tool_use":
        uses = [block for block in final.content if block.type == "tool_use"]
        assert uses and all(isinstance(u.input, dict) for u in uses)
        json.dumps([u.input for u in uses])

    async with client.messages.stream(
        model=MODEL, max_tokens=60, messages=ask, tools=[WEATHER], extra_body={"temperature": 0},
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        forced = await stream.get_final_message()
    assert forced.stop_reason == "tool_use"
    [streamed_use] = [block for block in forced.content if block.type == "tool_use"]
    jsonschema.validate(streamed_use.input, WEATHER["input_schema"])


@pytest.mark.parametrize(("extra", "says"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search"),
    ({"extra_body": {"temperature": 1.5}}, "temperature"),
    ({"output_config": {"effort": "high"}}, "effort"),
    ({"inference_geo": "eu"}, "inference_geo"),
    ({"tool_choice": {"type": "tool", "name": "nothing"}}, "tool_choice"),
])
async def test_bad_input_gets_anthropics_error_shape(
    coordinator: RunningCoordinator, extra: dict[str, Any], says: str
) -> None:
    client = await client_for(coordinator)
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.messages.create(model=MODEL, max_tokens=8, messages=QUESTION, **extra)
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert says in body["error"]["message"]


async def test_unknown_models_and_keys_are_anthropic_errors(
    coordinator: RunningCoordinator,
) -> None:
    client = await client_for(coordinator)
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(model="claude-3-opus", max_tokens=8, messages=QUESTION)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    stranger = anthropic.AsyncAnthropic(
        api_key="sk-nobody", base_url=coordinator.base_url, max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as refused:
        await stranger.messages.create(model=MODEL, max_tokens=8, messages=QUESTION)
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
