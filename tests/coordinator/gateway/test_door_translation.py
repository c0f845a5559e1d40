"""The three doors' translations (pure), table-tested both ways: an Anthropic Messages or OpenAI
Responses request becomes the turns, tools and choice a Chat Completions request would; an
answer (text or calls) comes back in each door's own shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordinator.gateway.anthropic_types import MessagesRequest, answer_blocks, stop_reason
from coordinator.gateway.openai_types import ChatCompletionRequest
from coordinator.gateway.responses_types import ResponseRequest, answered_turns, output_items
from coordinator.gateway.tools import CallMade, ToolAnswer
from protocol.chat import ChatMessage, ToolCall

CALL = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
TURNS = (
    ChatMessage(role="system", content="Be brief."),
    ChatMessage(role="user", content="Weather in Paris?"),
    ChatMessage(role="assistant", content="", tool_calls=(CALL,)),
    ChatMessage(role="tool", content="21", tool_call_id="call_1"),
    ChatMessage(role="user", content="Thanks. And tomorrow?"),
)
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}}

CHAT: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21"},
        {"role": "user", "content": "Thanks. And tomorrow?"},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}],
}
ANTHROPIC: dict[str, Any] = {
    "model": "m", "max_tokens": 10, "system": "Be brief.",
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "21"},
            {"type": "text", "text": "Thanks. And tomorrow?"}]},
    ],
    "tools": [{"name": "get_weather", "input_schema": SCHEMA}],
}
RESPONSES: dict[str, Any] = {
    "model": "m", "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "21"},
        {"role": "user", "content": [{"type": "input_text", "text": "Thanks. And tomorrow?"}]},
    ],
    "tools": [{"type": "function", "name": "get_weather", "parameters": SCHEMA}],
}


def test_every_door_reads_the_same_conversation_and_tools() -> None:
    chat = ChatCompletionRequest.model_validate(CHAT)
    anthropic = MessagesRequest.model_validate(ANTHROPIC)
    responses = ResponseRequest.model_validate(RESPONSES)
    assert tuple(m.to_chat() for m in chat.messages) == TURNS
    assert anthropic.conversation() == TURNS
    instructions = ChatMessage(role="system", content=responses.instructions or "")
    assert (instructions, *responses.turns()) == TURNS
    assert chat.wire_tools() == anthropic.wire_tools() == responses.wire_tools()
    assert chat.tool_answer_schema() is not None


@pytest.mark.parametrize(("chat", "anthropic", "responses", "internal"), [
    (None, None, None, "auto"),
    ("required", {"type": "any"}, "required", "required"),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"type": "tool", "name": "get_weather"}, {"type": "function", "name": "get_weather"},
     "get_weather"),
    ("none", {"type": "none"}, "none", "none"),
])
def test_tool_choices_mean_the_same_at_every_door(
    chat: Any, anthropic: Any, responses: Any, internal: str
) -> None:
    assert ChatCompletionRequest.model_validate({**CHAT, "tool_choice": chat}).chosen_tool() \
        == internal
    assert MessagesRequest.model_validate(
        {**ANTHROPIC, "tool_choice": anthropic}).chosen_tool() == internal
    assert ResponseRequest.model_validate(
        {**RESPONSES, "tool_choice": responses}).chosen_tool() == internal


TEXT = ToolAnswer("It is sunny.", (), "stop")
CUT = ToolAnswer("It is", (), "length")
CALLED = ToolAnswer(None, (CallMade("call_9", "get_weather", '{"city": "Rome"}'),), "tool_calls")


@pytest.mark.parametrize(("answer", "blocks", "reason"), [
    (TEXT, [{"type": "text", "text": "It is sunny."}], "end_turn"),
    (CUT, [{"type": "text", "text": "It is"}], "max_tokens"),
    (CALLED, [{"type": "tool_use", "name": "get_weather", "input": {"city": "Rome"}}],
     "tool_use"),
])
def test_answers_come_back_as_anthropic_blocks(
    answer: ToolAnswer, blocks: list[dict[str, Any]], reason: str
) -> None:
    written, stop = answer_blocks(answer)
    assert stop == reason == stop_reason(answer.finish_reason)
    dumped = [block.model_dump() for block in written]
    for block in dumped:
        block.pop("id", None)
    assert dumped == blocks


def test_answers_come_back_as_responses_items_and_continue_as_turns() -> None:
    [message] = output_items(TEXT)
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0] == {"type": "output_text", "text": "It is sunny.",
                                     "annotations": [], "logprobs": []}
    [call] = output_items(CALLED)
    assert (call["type"], call["call_id"], call["name"]) == ("function_call", "call_9",
                                                             "get_weather")
    assert json.loads(call["arguments"]) == {"city": "Rome"}
    assert answered_turns(TEXT) == [ChatMessage(role="assistant", content="It is sunny.")]
    [turn] = answered_turns(CALLED)
    assert turn.tool_calls == (ToolCall(id="call_9", name="get_weather",
                                        arguments='{"city": "Rome"}'),)
