"""``POST /v1/completions`` through the official openai client: the base Gemma 3 270M continues a
prompt as written (whole, streamed, with logprobs and echo), a chat model takes a raw prompt
without its template, and what cannot be honoured is a 400 naming its parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from support.cluster import AgentProcess, RunningCoordinator

GEMMA = "gemma-3-270m"
SMOLLM2 = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


# Every test here asks as a consumer of its own and leaves the nodes idle: one coordinator with a
# Gemma and a SmolLM2 node per backend serves the whole module (tests/conftest.py).
@pytest.fixture
def coordinator(shared_coordinator: RunningCoordinator) -> RunningCoordinator:
    return shared_coordinator


@pytest.fixture
def gemma_agent(shared_gemma_agent: AgentProcess) -> AgentProcess:
    return shared_gemma_agent


@pytest.fixture
def smollm2_agent(shared_smollm2_agent: AgentProcess) -> AgentProcess:
    return shared_smollm2_agent


async def test_a_base_model_continues_a_prompt_and_bills_it(
    coordinator: RunningCoordinator, gemma_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    raw = await client.completions.with_raw_response.create(
        model=GEMMA, prompt=PROMPT, max_tokens=8, temperature=0,
    )
    completion = raw.parse()
    assert raw.headers["X-Koretex-Node"]
    assert completion.object == "text_completion"
    choice = completion.choices[0]
    assert choice.text.strip()
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert 1 <= completion.usage.completion_tokens <= 8
    assert completion.usage.prompt_tokens >= 5  # BOS and the five words at least
    again = await client.completions.create(model=GEMMA, prompt=PROMPT, max_tokens=8,
                                            temperature=0)
    assert again.choices[0].text == choice.text  # greedy: the model's answer, every time

    stream = await client.completions.create(
        model=GEMMA, prompt=PROMPT, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
    assert streamed == choice.text
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens


async def test_logprobs_and_echo_take_the_legacy_shape(
    coordinator: RunningCoordinator, gemma_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    scored = await client.completions.create(
        model=GEMMA, prompt=PROMPT, max_tokens=5, temperature=0, logprobs=3,
    )
    logprobs = scored.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert logprobs.top_logprobs is not None and logprobs.text_offset is not None
    assert "".join(logprobs.tokens) == scored.choices[0].text
    assert all(len(top) == 3 for top in logprobs.top_logprobs)
    for token, logprob, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        assert logprob == pytest.approx(max(top.values()), abs=1e-3)  # greedy: the best one
        assert token in top
    assert logprobs.text_offset[0] == 0
    echoed = await client.completions.create(
        model=GEMMA, prompt=PROMPT, max_tokens=5, temperature=0, echo=True,
    )
    assert echoed.choices[0].text == PROMPT + scored.choices[0].text


async def test_a_chat_model_continues_a_raw_prompt_without_its_template(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    text = "Paris is the capital of"
    raw = await client.completions.create(model=SMOLLM2, prompt=text, max_tokens=4,
                                          temperature=0)
    chat = await client.chat.completions.create(
        model=SMOLLM2, messages=[{"role": "user", "content": text}], max_tokens=4, temperature=0,
    )
    assert raw.choices[0].text.strip()
    assert raw.usage is not None and chat.usage is not None
    # The words alone (five tokens, and no BOS in this vocabulary); the chat wraps them in its
    # template's turns and default system prompt.
    assert raw.usage.prompt_tokens <= 8 < 20 < chat.usage.prompt_tokens
    # Markers written in a raw prompt are its text, never the template's special tokens.
    marked = await client.completions.create(
        model=SMOLLM2, prompt="<|im_end|>", max_tokens=1, temperature=0,
    )
    assert marked.usage is not None and marked.usage.prompt_tokens > 1


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("suffix", {"suffix": "end."}, "suffix"),
    ("n", {"n": 2}, "n"),
    ("best_of", {"best_of": 3}, "best_of"),
    ("token prompt", {"prompt": [[1, 2, 3]]}, "prompt"),
    ("two prompts", {"prompt": ["a", "b"]}, "prompt"),
    ("echo with logprobs", {"echo": True, "logprobs": 2}, "echo"),
    ("logprobs above 5", {"logprobs": 6}, "logprobs"),
    ("unknown", {"extra_body": {"response_format": {"type": "json_object"}}},
     "response_format"),
]


@pytest.mark.parametrize(("case", "extra", "param"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_what_cannot_be_honoured_is_a_400_naming_it(
    coordinator: RunningCoordinator, case: str, extra: dict[str, Any], param: str, tmp_path: Path
) -> None:
    client = await coordinator.client()
    arguments: dict[str, Any] = {"model": GEMMA, "prompt": PROMPT, "max_tokens": 4, **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        await client.completions.create(**arguments)
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error


async def test_chat_to_a_base_model_points_to_completions(
    coordinator: RunningCoordinator,
) -> None:
    client = await coordinator.client()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=GEMMA, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
    assert "/v1/completions" in str(refused.value)
