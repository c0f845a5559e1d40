"""The tool-calling core (pure): the answer's schema for each tool_choice, and reading answers."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from coordinator.gateway.tools import answer_schema_for_tools, read_tool_answer
from protocol.chat import FunctionTool

WEATHER = FunctionTool(name="get_weather", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
})
TIME = FunctionTool(name="get_time", parameters={"type": "object", "properties": {}})
CALL_WEATHER = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
CALL_BOTH = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}},
                            {"name": "get_time", "arguments": {}}]}
TEXT = {"response": "It is sunny."}
BAD_ARGUMENTS = {"tool_calls": [{"name": "get_weather", "arguments": {"town": "Paris"}}]}
UNKNOWN_TOOL = {"tool_calls": [{"name": "get_news", "arguments": {}}]}

# (choice, parallel, answer, valid)
CASES: list[tuple[str, bool, dict[str, Any], bool]] = [
    ("auto", True, CALL_WEATHER, True),
    ("auto", True, CALL_BOTH, True),
    ("auto", True, TEXT, True),
    ("auto", True, BAD_ARGUMENTS, False),
    ("auto", True, UNKNOWN_TOOL, False),
    ("auto", False, CALL_BOTH, False),
    ("required", True, CALL_BOTH, True),
    ("required", True, TEXT, False),
    ("get_time", True, {"tool_calls": [{"name": "get_time", "arguments": {}}]}, True),
    ("get_time", True, CALL_WEATHER, False),
    ("get_time", True, CALL_BOTH, False),
    ("auto", True, {"tool_calls": []}, False),
]


@pytest.mark.parametrize(("choice", "parallel", "answer", "valid"), CASES)
def test_the_schema_admits_exactly_the_answers_the_choice_allows(
    choice: str, parallel: bool, answer: dict[str, Any], valid: bool
) -> None:
    schema = answer_schema_for_tools((WEATHER, TIME), choice, parallel=parallel)
    assert schema is not None
    if valid:
        jsonschema.validate(answer, schema)
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(answer, schema)


def test_no_tools_or_none_leave_the_answer_free() -> None:
    assert answer_schema_for_tools((), "auto", parallel=True) is None
    assert answer_schema_for_tools((WEATHER,), "none", parallel=True) is None


def test_calls_are_read_with_fresh_ids_and_arguments_as_json_text() -> None:
    answer = read_tool_answer(json.dumps(CALL_BOTH), "stop")
    assert answer.finish_reason == "tool_calls" and answer.content is None
    assert [call.name for call in answer.calls] == ["get_weather", "get_time"]
    assert json.loads(answer.calls[0].arguments) == {"city": "Rome"}
    assert len({call.id for call in answer.calls}) == 2
    assert all(call.id.startswith("call_") for call in answer.calls)


@pytest.mark.parametrize(("text", "finish", "content", "reason"), [
    (json.dumps(TEXT), "stop", "It is sunny.", "stop"),
    ('{"tool_calls": [{"name": "get_wea', "length", '{"tool_calls": [{"name": "get_wea',
     "length"),
    ("plain words", "stop", "plain words", "stop"),
])
def test_text_answers_and_cut_answers_are_text(
    text: str, finish: str, content: str, reason: str
) -> None:
    answer = read_tool_answer(text, finish)
    assert (answer.content, answer.calls, answer.finish_reason) == (content, (), reason)
