"""Every Chat Completions parameter is honoured or refused with a 400 naming it: through the
official openai client against the real coordinator (and a real llama.cpp node where it answers)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from support.cluster import AgentProcess, RunningCoordinator

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Name three colours."}]


# Every test here asks as a consumer of its own (the node, where one answers, is left idle): one
# coordinator and SmolLM2 node per backend serve the whole module (tests/conftest.py).
@pytest.fixture
def coordinator(shared_coordinator: RunningCoordinator) -> RunningCoordinator:
    return shared_coordinator


@pytest.fixture
def smollm2_agent(shared_smollm2_agent: AgentProcess) -> AgentProcess:
    return shared_smollm2_agent


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("tool_choice", {"tool_choice": "auto"}, "tool_choice"),
    ("audio", {"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ("audio modality", {"modalities": ["text", "audio"]}, "modalities"),
    ("prediction", {"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ("schema that cannot be enforced", {"response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}},
    }}, "response_format"),
    ("unknown response format", {"response_format": {"type": "yaml"}}, "response_format"),
    ("presence_penalty out of range", {"presence_penalty": 2.5}, "presence_penalty"),
    ("frequency_penalty out of range", {"frequency_penalty": -3.0}, "frequency_penalty"),
    ("logit_bias out of range", {"logit_bias": {"42": 500}}, "logit_bias"),
    ("logit_bias not a token", {"logit_bias": {"hello": 5}}, "logit_bias"),
    ("min_p out of range", {"extra_body": {"min_p": 1.5}}, "min_p"),
    ("n streamed", {"n": 2, "stream": True}, "n"),
    ("n above the limit", {"n": 9}, "n"),
    ("unknown", {"extra_body": {"best_of": 3}}, "best_of"),
]


@pytest.mark.parametrize(("case", "extra", "param"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_a_parameter_koretex_cannot_honour_is_a_400_naming_it(
    coordinator: RunningCoordinator, case: str, extra: dict[str, Any], param: str
) -> None:
    client = await coordinator.client()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=MODEL, messages=PROMPT, **extra)  # type: ignore[call-overload]
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert param.split(".")[0] in error["message"] or case == "unknown", error


@pytest.mark.parametrize(("message", "says"), [
    ({"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]}, "does not accept images"),
    ({"role": "tool", "content": "42"}, "tool_call_id"),
])
async def test_content_the_model_cannot_take_is_refused_with_the_reason(
    coordinator: RunningCoordinator, message: dict[str, Any], says: str
) -> None:
    client = await coordinator.client()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model=MODEL, messages=[message])  # type: ignore[list-item]
    error = refused.value.body
    assert isinstance(error, dict)
    assert says in error["message"]
    assert error["param"] == "messages.0"


async def test_null_optional_fields_and_bookkeeping_fields_mean_the_defaults(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    body = {
        "model": MODEL, "messages": PROMPT, "max_tokens": 6, "temperature": 0,
        "n": None, "stream": None, "stop": None, "seed": None, "logprobs": None,
        "top_logprobs": None, "stream_options": None, "presence_penalty": None,
        "frequency_penalty": 0, "logit_bias": {}, "response_format": {"type": "text"},
        "modalities": ["text"], "user": "someone", "metadata": {"app": "test"}, "store": False,
        "service_tier": "auto", "tools": None,
    }
    async with httpx.AsyncClient(base_url=coordinator.base_url, timeout=60) as http:
        answer = await http.post(
            "/v1/chat/completions", json=body,
            headers={"Authorization": f"Bearer {await coordinator.api_key()}"},
        )
    assert answer.status_code == 200, answer.text
    completion = answer.json()
    assert len(completion["choices"]) == 1
    assert completion["choices"][0]["logprobs"] is None
    assert 1 <= completion["usage"]["completion_tokens"] <= 6


async def test_a_model_is_retrieved_by_id_and_an_unknown_id_is_a_404(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    model = await client.models.retrieve(MODEL)
    assert model.id == MODEL
    assert model.object == "model"
    listed = {entry.id: entry for entry in (await client.models.list()).data}
    assert model.model_dump() == listed[MODEL].model_dump()
    with pytest.raises(openai.NotFoundError) as missing:
        await client.models.retrieve("no-such-model")
    error = missing.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
