"""What a cloud upstream is asked and held to (pure): the sampling extensions and the response
format under their OpenAI-compatible names, tool turns written as plain turns, raw prompts
refused, and a constrained answer that breaks its schema failed, never delivered as done."""

from __future__ import annotations

from typing import Any

import pytest

from coordinator.cloud.relay import AnswerCheck
from coordinator.cloud.upstream import CannotResume, request_body
from protocol.chat import ChatMessage, FunctionTool, SamplingParams, ToolCall
from protocol.constraints import ANY_JSON_OBJECT
from protocol.ids import JobId, ModelId
from protocol.messages import Job, JobDone, JobFailed, TokenDelta

JOB = JobId("job-1")
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"ok": {"type": "boolean"}},
                          "required": ["ok"]}


def job(params: SamplingParams, **fields: Any) -> Job:
    messages = fields.pop("messages", (ChatMessage(role="user", content="Hi"),))
    return Job(job_id=JOB, model=ModelId("m"), messages=messages, params=params, **fields)


def test_neutral_parameters_add_nothing_to_the_body() -> None:
    body = request_body(job(SamplingParams(max_tokens=5)), "up", resume=False)
    assert set(body) == {"model", "messages", "temperature", "top_p", "stream",
                         "stream_options", "max_tokens"}


def test_steering_parameters_travel_under_their_compatible_names() -> None:
    params = SamplingParams(
        max_tokens=5, top_k=7, min_p=0.1, repetition_penalty=1.3, presence_penalty=0.5,
        frequency_penalty=-0.5, logit_bias={42: 3.0}, json_schema=SCHEMA,
    )
    body = request_body(job(params), "up", resume=False)
    assert body["top_k"] == 7 and body["min_p"] == 0.1
    assert body["repetition_penalty"] == body["repeat_penalty"] == 1.3
    assert body["presence_penalty"] == 0.5 and body["frequency_penalty"] == -0.5
    assert body["logit_bias"] == {"42": 3.0}
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    }
    plain_object = request_body(
        job(SamplingParams(max_tokens=5, json_schema=ANY_JSON_OBJECT)), "up", resume=False
    )
    assert plain_object["response_format"] == {"type": "json_object"}


def test_tool_turns_reach_the_upstream_as_plain_turns() -> None:
    messages = (
        ChatMessage(role="user", content="Weather?"),
        ChatMessage(role="assistant", content="", tool_calls=(
            ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
        )),
        ChatMessage(role="tool", content="21", tool_call_id="call_1"),
    )
    tools = (FunctionTool(name="get_weather"),)
    body = request_body(
        job(SamplingParams(max_tokens=5), messages=messages, tools=tools), "up", resume=False
    )
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in body["messages"])
    assert "get_weather" in body["messages"][0]["content"]


def test_a_raw_prompt_is_not_sent_to_a_chat_upstream() -> None:
    with pytest.raises(CannotResume):
        request_body(job(SamplingParams(max_tokens=5), raw_prompt=True), "up", resume=False)


@pytest.mark.parametrize(("text", "passes"), [
    ('{"ok": true}', True), ('{"ok": "yes"}', False), ("not json", False),
])
def test_a_constrained_answer_is_held_to_its_schema(text: str, passes: bool) -> None:
    check = AnswerCheck(SCHEMA)
    events = check.events([
        TokenDelta(job_id=JOB, text=text[:3], tokens=1),
        TokenDelta(job_id=JOB, text=text[3:], tokens=1),
    ])
    assert len(events) == 2
    [end] = check.events([JobDone(job_id=JOB, finish_reason="stop", prompt_tokens=3,
                                  completion_tokens=2)])
    assert isinstance(end, JobDone if passes else JobFailed)
    if not passes:
        assert isinstance(end, JobFailed) and end.code == "engine_error"
        assert "schema" in end.message


def test_an_answer_cut_at_max_tokens_or_unconstrained_passes_as_it_is() -> None:
    cut = AnswerCheck(SCHEMA)
    cut.events([TokenDelta(job_id=JOB, text='{"ok', tokens=1)])
    done = JobDone(job_id=JOB, finish_reason="length", prompt_tokens=3, completion_tokens=1)
    assert cut.events([done]) == [done]
    free = AnswerCheck(None)
    events = [TokenDelta(job_id=JOB, text="hi", tokens=1), done]
    assert free.events(list(events)) == events
