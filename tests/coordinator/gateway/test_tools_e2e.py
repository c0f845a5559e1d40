"""Tool calling end to end: the official openai client, the real coordinator and a real SmolLM2
agent on llama.cpp. A two-turn conversation (a call, its result, the final answer) works whole
and streamed; ``required`` and a named function always yield calls whose arguments validate
against the function's schema; what cannot be honoured is a 400 naming its parameter."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from support.cluster import AgentProcess, RunningCoordinator

MODEL = "smollm2-135m-instruct"


# Every test here asks the node as a consumer of its own and leaves it idle: one coordinator and
# SmolLM2 node per backend serve the whole module (tests/conftest.py).
@pytest.fixture
def coordinator(shared_coordinator: RunningCoordinator) -> RunningCoordinator:
    return shared_coordinator


@pytest.fixture
def smollm2_agent(shared_smollm2_agent: AgentProcess) -> AgentProcess:
    return shared_smollm2_agent


WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS: Any = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "The current weather in a city.",
        "parameters": WEATHER_PARAMETERS,
    }},
    {"type": "function", "function": {
        "name": "get_time", "description": "The local time in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    }},
]
QUESTION: Any = {"role": "user", "content": "What is the weather in Paris?"}


async def test_a_tool_round_trip_whole(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    first = await client.chat.completions.create(
        model=MODEL, messages=[QUESTION], tools=TOOLS, tool_choice="required", max_tokens=60,
        temperature=0,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls, choice
    call = calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name in ("get_weather", "get_time")
    arguments = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        jsonschema.validate(arguments, WEATHER_PARAMETERS)
    assert first.usage is not None and first.usage.prompt_tokens > 100  # the tools are in it

    final = await client.chat.completions.create(
        model=MODEL, tools=TOOLS, max_tokens=60, temperature=0,
        messages=[
            QUESTION,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
        ],
    )
    answer = final.choices[0]
    assert answer.finish_reason in ("stop", "tool_calls", "length")
    if answer.finish_reason == "stop":
        assert answer.message.content and not answer.message.tool_calls
    if answer.finish_reason == "tool_calls":
        assert answer.message.tool_calls


async def test_a_named_function_is_called_streamed(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    stream = await client.chat.completions.create(
        model=MODEL, messages=[QUESTION], tools=TOOLS, max_tokens=60, temperature=0.7, seed=3,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [call for delta in deltas for call in delta.tool_calls or ()]
    assert len(calls) == 1
    assert calls[0].index == 0 and calls[0].id and calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    jsonschema.validate(json.loads(calls[0].function.arguments or ""), WEATHER_PARAMETERS)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    final = await client.chat.completions.create(
        model=MODEL, tools=TOOLS, tool_choice="none", max_tokens=30, temperature=0,
        stream=True,
        messages=[
            QUESTION,
            {"role": "assistant", "tool_calls": [{
                "id": calls[0].id, "type": "function",
                "function": {"name": "get_weather", "arguments": calls[0].function.arguments},
            }]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "21 degrees, sunny"},
        ],
    )
    text = "".join([c.choices[0].delta.content or "" async for c in final if c.choices])
    assert text.strip()


async def test_auto_answers_in_text_or_calls_never_anything_else(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    for seed in range(4):
        completion = await client.chat.completions.create(
            model=MODEL, messages=[QUESTION], tools=TOOLS, max_tokens=80, temperature=0.9,
            seed=seed,
        )
        choice = completion.choices[0]
        if choice.finish_reason == "tool_calls":
            assert choice.message.tool_calls and choice.message.content is None
        elif choice.finish_reason == "stop":
            assert choice.message.content is not None and not choice.message.tool_calls
            assert not choice.message.content.startswith('{"response"')


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("choice without tools", {"tool_choice": "auto"}, "tool_choice"),
    ("an unknown named tool", {"tools": TOOLS, "tool_choice": {
        "type": "function", "function": {"name": "get_news"}}}, "tool_choice"),
    ("parameters that cannot be enforced", {"tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"$ref": "#/nowhere"}}}]}, "tools"),
    ("two tools of one name", {"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
    ("json format with tools", {"tools": TOOLS, "response_format": {"type": "json_object"}},
     "response_format"),
    ("deprecated functions", {"functions": [{"name": "f"}]}, "functions"),
]


@pytest.mark.parametrize(("case", "extra", "param"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_tool_requests_that_cannot_be_honoured_are_400s_naming_them(
    coordinator: RunningCoordinator, case: str, extra: dict[str, Any], param: str
) -> None:
    client = await coordinator.client()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=MODEL, messages=[QUESTION], **extra)
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == param, error


async def test_a_tool_message_needs_its_call_id(coordinator: RunningCoordinator) -> None:
    client = await coordinator.client()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=MODEL, messages=[QUESTION, {"role": "tool", "content": "21"}],  # type: ignore[list-item, typeddict-item]
        )
    assert "tool_call_id" in str(refused.value)
