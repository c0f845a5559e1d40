"""The gateway end to end: official openai client -> real coordinator -> real llama.cpp node.

Chat runs on SmolLM2 135M Instruct (its GGUF's own ChatML template); Gemma 3 270M base has no
chat template, so chat requests to it are refused.

The tests share one coordinator and SmolLM2 node per backend (each asks as a consumer of its own
and leaves the node idle); those that need a network without it have one of their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from support.cluster import AgentProcess, RunningCoordinator, wait_for

from coordinator.gateway.openai_types import ChatCompletionChunk

MODEL = "smollm2-135m-instruct"
BASE_MODEL = "gemma-3-270m"
PROMPT = [{"role": "user", "content": "Name three colours."}]


# One coordinator and SmolLM2 node per backend for the module (tests/conftest.py).
@pytest.fixture
def coordinator(shared_coordinator: RunningCoordinator) -> RunningCoordinator:
    return shared_coordinator


@pytest.fixture
def smollm2_agent(shared_smollm2_agent: AgentProcess) -> AgentProcess:
    return shared_smollm2_agent


async def test_non_streaming_completion_reports_usage_and_node(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=PROMPT, max_tokens=12, temperature=0  # type: ignore[arg-type]
    )
    completion = raw.parse()
    assert raw.headers["X-Koretex-Node"] == smollm2_agent.node_id
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 5
    assert 1 <= completion.usage.completion_tokens <= 12
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_greedy_answers_are_reproducible_through_the_network(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    answers = [
        (await client.chat.completions.create(
            model=MODEL, messages=PROMPT, max_tokens=10, temperature=0  # type: ignore[arg-type]
        )).choices[0].message.content
        for _ in range(2)
    ]
    assert answers[0] == answers[1]


async def test_streaming_matches_non_streaming_and_honours_include_usage(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    whole = await client.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=16, temperature=0  # type: ignore[arg-type]
    )
    stream = await client.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=16, temperature=0, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    text, finish, usage, chunks = [], None, None, 0
    async for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
            continue
        delta = chunk.choices[0].delta
        text.append(delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(text) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks >= 3


async def test_stream_frames_are_valid_chunks_and_end_with_done(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    key = await coordinator.api_key()
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 6, "stream": True,
            "logprobs": True, "top_logprobs": 2}
    async with httpx.AsyncClient(timeout=60) as http, http.stream(
        "POST", f"{coordinator.base_url}/v1/chat/completions", json=body,
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(f)) for f in frames[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    with_logprobs = [c for c in chunks if c.choices[0].logprobs is not None]
    assert with_logprobs, "logprobs were asked for"
    for chunk in with_logprobs:
        for item in chunk.choices[0].logprobs.content or []:  # type: ignore[union-attr]
            assert item.logprob <= 0
            assert len(item.top_logprobs) == 2
    # without the option, no usage chunk is sent
    assert all(c.usage is None for c in chunks)


async def test_models_list_shows_live_models_with_nodes_and_price(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    models = await client.models.list()
    entries = {m.id: m for m in models.data}
    assert set(entries) == {MODEL}
    extra = entries[MODEL].model_extra or {}
    assert extra["nodes"] == 1
    assert extra["credits_per_1m"] == {"input": 10, "output": 20}
    assert extra["chat_template"] is True


async def test_models_list_is_empty_without_nodes(own_coordinator: RunningCoordinator) -> None:
    client = await own_coordinator.client()
    assert (await client.models.list()).data == []


async def test_error_statuses_map_to_openai_exceptions(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model="no-such-model", messages=PROMPT)  # type: ignore[arg-type]
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model=MODEL, messages=[])
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model=MODEL, messages=PROMPT, temperature=7  # type: ignore[arg-type]
        )
    wrong_key = openai.AsyncOpenAI(
        base_url=f"{coordinator.base_url}/v1", api_key="ktx-not-a-real-key", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        await wrong_key.models.list()


async def test_missing_key_and_malformed_json_get_openai_error_bodies(
    coordinator: RunningCoordinator,
) -> None:
    key = await coordinator.api_key()
    async with httpx.AsyncClient() as http:
        missing = await http.post(f"{coordinator.base_url}/v1/chat/completions", json={})
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "authentication_error"
        malformed = await http.post(
            f"{coordinator.base_url}/v1/chat/completions", content=b'{"model": ',
            headers={"Authorization": f"Bearer {key}"},
        )
        assert malformed.status_code == 400
        assert set(malformed.json()["error"]) == {"message", "type", "param", "code"}


async def test_no_live_node_is_503_with_retry_after(own_coordinator: RunningCoordinator) -> None:
    client = await own_coordinator.client()
    with pytest.raises(openai.InternalServerError) as unavailable:
        await client.chat.completions.create(model=MODEL, messages=PROMPT)  # type: ignore[arg-type]
    assert unavailable.value.status_code == 503
    assert int(unavailable.value.response.headers["Retry-After"]) > 0


async def test_context_overflow_is_a_400_and_leaves_the_node_healthy(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    huge = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=huge, max_tokens=8)  # type: ignore[arg-type]
    snapshot = coordinator.services.router.snapshot(
        smollm2_agent.node_id, now=coordinator.services.clock.monotonic()  # type: ignore[arg-type]
    )
    assert snapshot.breaker_state.name == "CLOSED"
    assert snapshot.in_flight == 0
    ok = await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=4)  # type: ignore[arg-type]
    assert ok.choices[0].message.content is not None


async def test_the_instruct_model_names_the_capital_of_france(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    answer = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Name the capital of France."}],
        max_tokens=24, temperature=0,
    )
    assert "Paris" in (answer.choices[0].message.content or "")
    assert answer.choices[0].finish_reason == "stop"  # the model ends its own turn (<|im_end|>)


async def test_chat_to_a_model_without_a_chat_template_is_a_400(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess, gemma_path: Path,
    tmp_path: Path,
) -> None:
    # Gemma joins the module's network for this test only: gone again before the next one.
    gemma_agent = AgentProcess.llama(coordinator, gemma_path, tmp_path / "agent-1", slots=2)
    hub = coordinator.services.hub
    try:
        await gemma_agent.start()
        client = await coordinator.client()
        listed = {m.id: (m.model_extra or {}) for m in (await client.models.list()).data}
        assert listed[BASE_MODEL]["chat_template"] is False
        assert listed[MODEL]["chat_template"] is True
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model=BASE_MODEL, messages=PROMPT, max_tokens=4  # type: ignore[arg-type]
            )
        error = refused.value.body
        assert isinstance(error, dict)
        assert error["message"] == (
            "model gemma-3-270m has no chat template; use /v1/completions"
        )
        assert error["type"] == "invalid_request_error" and error["param"] == "model"
        snapshot = coordinator.services.router.snapshot(
            gemma_agent.node_id, now=coordinator.services.clock.monotonic()  # type: ignore[arg-type]
        )
        assert snapshot.in_flight == 0 and snapshot.breaker_state.name == "CLOSED"
    finally:
        await gemma_agent.stop()
        await wait_for(lambda: hub.get(gemma_agent.node_id) is None, 30,  # type: ignore[arg-type]
                       "the Gemma node to leave")
