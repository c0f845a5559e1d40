"""``POST /v1/responses`` through the official openai client's ``responses.create`` and
``responses.stream``, unchanged, against the real coordinator and a real SmolLM2 agent: text
whole and streamed, a function tool round trip, ``previous_response_id`` with stored responses
readable by their own key only, structured output, refusals, and the books."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
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


WEATHER: Any = {
    "type": "function", "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                   "required": ["city"], "additionalProperties": False},
}


async def test_text_whole_and_streamed_with_usage(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    services = coordinator.services
    price = services.catalogue.get(MODEL)
    assert price is not None
    await services.ledger.flush()
    before = await audit(services.database, price.price.input_per_1m, price.price.output_per_1m)
    client = await coordinator.client()
    response = await client.responses.create(
        model=MODEL, input="Name the capital of France.", temperature=0, max_output_tokens=16,
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status in ("completed", "incomplete")
    assert "Paris" in response.output_text
    assert response.usage is not None and response.usage.output_tokens >= 1

    async with client.responses.stream(
        model=MODEL, input="Name the capital of France.", temperature=0, max_output_tokens=16,
    ) as stream:
        deltas = [
            event.delta async for event in stream if event.type == "response.output_text.delta"
        ]
        final = await stream.get_final_response()
    assert "".join(deltas) == response.output_text == final.output_text
    assert final.usage is not None
    assert final.usage.output_tokens == response.usage.output_tokens
    assert final.usage.input_tokens == response.usage.input_tokens

    await services.ledger.flush()
    books = await audit(services.database, price.price.input_per_1m, price.price.output_per_1m)
    assert books.calls - before.calls == 2 and books.charges_not_matching_tokens == 0
    assert books.unbalanced_transactions == 0 and books.held_by_accounts == books.minted


async def test_a_function_tool_round_trip_and_previous_response_id(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    first = await client.responses.create(
        model=MODEL, input="What is the weather in Paris?", tools=[WEATHER],
        tool_choice="required", parallel_tool_calls=False, temperature=0, store=True,
        max_output_tokens=60,
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])

    async with client.responses.stream(
        model=MODEL, previous_response_id=first.id, tools=[WEATHER], temperature=0,
        max_output_tokens=60, store=True,
        input=[{"type": "function_call_output", "call_id": call.call_id,
                "output": "21 degrees and sunny"}],
    ) as stream:
        second = await stream.get_final_response()
    assert second.previous_response_id == first.id
    assert second.output, second
    assert second.usage is not None and first.usage is not None
    # The earlier turns (question, call) were carried: the prompt is longer than the first's.
    assert second.usage.input_tokens > first.usage.input_tokens

    fetched = await client.responses.retrieve(first.id)
    assert fetched.id == first.id and fetched.output[0].type == "function_call"
    stranger = await coordinator.client(account="someone-else")
    with pytest.raises(openai.NotFoundError):
        await stranger.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        await stranger.responses.create(model=MODEL, input="Hi", previous_response_id=first.id)
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)


async def test_a_json_schema_format_is_enforced(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    schema = {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]},
                                               "sunny": {"type": "boolean"}},
              "required": ["city", "sunny"], "additionalProperties": False}
    response = await client.responses.create(
        model=MODEL, input="Is it sunny in Paris? Answer in JSON.", max_output_tokens=40,
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema,
                         "strict": True}},
    )
    jsonschema.validate(json.loads(response.output_text), schema)


async def test_stateless_by_default(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    response = await client.responses.create(model=MODEL, input="Hi", max_output_tokens=4)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "web_search_preview"}]}, "tools"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools"),
    ({"reasoning": {"effort": "high"}}, "reasoning"),
    ({"background": True}, "background"),
    ({"input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]}, "input"),
    ({"text": {"format": {"type": "json_schema", "name": "x",
                          "schema": {"$ref": "#/nowhere"}}}}, "text"),
    ({"tool_choice": "required"}, "tool_choice"),
])
async def test_what_cannot_be_honoured_is_a_400_naming_it(
    coordinator: RunningCoordinator, extra: dict[str, Any], param: str
) -> None:
    client = await coordinator.client()
    arguments: dict[str, Any] = {"model": MODEL, "input": "Hi", **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(**arguments)
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == param, error
