"""A job that fills the context (its consumer left max_tokens unset) generates up to the room
its prompt leaves, where any other job is refused when prompt and max_tokens do not fit."""

from __future__ import annotations

import pytest

from agent.engines.completion import params_within_context
from agent.errors import ContextLengthExceeded
from protocol.chat import SamplingParams


@pytest.mark.parametrize(
    ("prompt_tokens", "max_tokens", "fill_context", "expected"),
    [
        (100, 412, False, 412),  # fits exactly
        (100, 300, True, 300),  # a ceiling under the room stays
        (100, 2048, True, 412),  # lowered to the room the context leaves
        (511, 2048, True, 1),
    ],
)
def test_the_max_tokens_generated_with(
    prompt_tokens: int, max_tokens: int, fill_context: bool, expected: int
) -> None:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.3, stop=("\n",), seed=4)
    fitted = params_within_context(prompt_tokens, params, 512, fill_context=fill_context)
    assert fitted == params.model_copy(update={"max_tokens": expected})


@pytest.mark.parametrize(
    ("prompt_tokens", "max_tokens", "fill_context", "message"),
    [
        (100, 413, False, "prompt \\(100 tokens\\) plus max_tokens \\(413\\) exceeds"),
        (512, 2048, True, "prompt \\(512 tokens\\) leaves no room in the context length of 512"),
        (900, 1, True, "prompt \\(900 tokens\\) leaves no room"),
    ],
)
def test_what_does_not_fit_is_refused(
    prompt_tokens: int, max_tokens: int, fill_context: bool, message: str
) -> None:
    with pytest.raises(ContextLengthExceeded, match=message):
        params_within_context(
            prompt_tokens, SamplingParams(max_tokens=max_tokens), 512, fill_context=fill_context
        )
