"""Tool turns written as plain turns (pure): the tools described in the system turn, earlier calls
as the answer's JSON, results as user turns carrying tool_response."""

from __future__ import annotations

import json

from protocol.chat import ChatMessage, FunctionTool, ToolCall
from protocol.tool_turns import tool_turns

WEATHER = FunctionTool(name="get_weather", description="The weather.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}},
})
ASK = ChatMessage(role="user", content="Weather in Paris and Rome?")
CALLS = ChatMessage(role="assistant", content="", tool_calls=(
    ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
    ToolCall(id="call_2", name="get_weather", arguments='{"city": "Rome"}'),
))
RESULTS = (
    ChatMessage(role="tool", content="21", tool_call_id="call_1"),
    ChatMessage(role="tool", content="25", tool_call_id="call_2"),
)


def test_a_plain_chat_is_left_as_it_is() -> None:
    assert tool_turns((ASK,), ()) == (ASK,)


def test_the_tools_are_described_in_a_system_turn_of_their_own_or_the_consumers() -> None:
    [system, user] = tool_turns((ASK,), (WEATHER,))
    assert system.role == "system" and user == ASK
    assert '"get_weather"' in system.content and '"tool_calls"' in system.content
    own = ChatMessage(role="system", content="Be brief.")
    [merged, _] = tool_turns((own, ASK), (WEATHER,))
    assert merged.content.startswith("Be brief.\n\n") and "get_weather" in merged.content


def test_calls_and_results_become_turns_every_template_renders() -> None:
    turns = tool_turns((ASK, CALLS, *RESULTS), (WEATHER,))
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert all(not t.tool_calls and t.tool_call_id is None for t in turns)
    assert json.loads(turns[2].content) == {"tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Rome"}},
    ]}
    assert json.loads(turns[3].content) == [
        {"tool_response": {"tool_call_id": "call_1", "content": "21"}},
        {"tool_response": {"tool_call_id": "call_2", "content": "25"}},
    ]


def test_tool_turns_without_tools_offered_are_still_written_out() -> None:
    turns = tool_turns((ASK, CALLS, RESULTS[0]), ())
    assert [t.role for t in turns] == ["user", "assistant", "user"]
