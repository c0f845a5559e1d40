"""What a request needs of a node's context (pure): the prompt's token floor, the budget of an
explicit or omitted max_tokens, and OpenAI's 400 when no live node holds it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.errors import ContextLengthExceeded, InvalidRequest
from coordinator.gateway.context import (
    PROMPT_BYTES_PER_TOKEN_CEILING,
    ContextBudget,
    context_budget,
    prompt_token_floor,
)
from protocol.chat import ChatMessage


def user(text: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage(role="user", content=text),)


SHORT = user("Name the capital of France.")  # 27 bytes: a floor of 1
LONG = user("x" * (PROMPT_BYTES_PER_TOKEN_CEILING * 300))  # a floor of 300


@pytest.mark.parametrize(
    ("messages", "requested", "largest", "expected"),
    [
        # explicit max_tokens: kept, and routed to a context of floor + max_tokens
        (SHORT, 100, 512, ContextBudget(1, 100, fill_context=False)),
        (SHORT, 511, 512, ContextBudget(1, 511, fill_context=False)),
        (LONG, 212, 512, ContextBudget(300, 212, fill_context=False)),
        (SHORT, 4000, None, ContextBudget(1, 4000, fill_context=False)),  # no live node yet
        # omitted: up to the largest live context, held at what that context leaves
        (SHORT, None, 2048, ContextBudget(1, 2047, fill_context=True)),
        (LONG, None, 512, ContextBudget(300, 212, fill_context=True)),
        (SHORT, None, None, ContextBudget(1, 8191, fill_context=True)),  # the catalogue's 8192
        (SHORT, None, 100_000, ContextBudget(1, 16_384, fill_context=True)),  # the hard cap
    ],
)
def test_the_budget_of_a_request(
    messages: tuple[ChatMessage, ...], requested: int | None, largest: int | None,
    expected: ContextBudget,
) -> None:
    budget = context_budget(
        messages, requested, largest_context=largest, catalogue_context=8192,
        max_tokens_limit=16_384,
    )
    assert budget == expected


@pytest.mark.parametrize(
    ("messages", "requested", "largest", "fragment"),
    [
        (SHORT, 512, 512, "maximum context length is 512 tokens. However, you requested at "
         "least 513 tokens (at least 1 in the messages, 512 in the completion)"),
        (LONG, 213, 512, "you requested at least 513 tokens (at least 300 in the messages, 213"),
        (user("x" * (PROMPT_BYTES_PER_TOKEN_CEILING * 512)), None, 512,
         "maximum context length is 512 tokens. However, your messages take at least 512 tokens"),
    ],
)
def test_a_request_no_live_context_holds_is_openais_400(
    messages: tuple[ChatMessage, ...], requested: int | None, largest: int, fragment: str
) -> None:
    with pytest.raises(ContextLengthExceeded) as refused:
        context_budget(
            messages, requested, largest_context=largest, catalogue_context=8192,
            max_tokens_limit=16_384,
        )
    error = refused.value.body()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "messages"
    assert error["type"] == "invalid_request_error"
    assert refused.value.status == 400
    assert fragment in refused.value.message


def test_max_tokens_over_the_limit_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequest) as refused:
        context_budget(
            SHORT, 16_385, largest_context=100_000, catalogue_context=8192,
            max_tokens_limit=16_384,
        )
    assert refused.value.param == "max_tokens"
    assert not isinstance(refused.value, ContextLengthExceeded)


@pytest.mark.parametrize(
    ("budget", "node_context", "completed", "expected"),
    [
        (ContextBudget(10, 2038, fill_context=True), 2048, 0, 2038),
        (ContextBudget(10, 2038, fill_context=True), 512, 0, 502),  # the node's context - prompt
        (ContextBudget(10, 2038, fill_context=True), None, 0, 2038),  # undeclared: the ceiling
        (ContextBudget(10, 2038, fill_context=True), 512, 100, 402),  # a resume
        (ContextBudget(10, 2038, fill_context=True), 20, 15, 1),
        (ContextBudget(10, 100, fill_context=False), 512, 0, 100),
        (ContextBudget(10, 100, fill_context=False), 512, 40, 60),
        (ContextBudget(10, 100, fill_context=False), 512, 100, 1),
    ],
)
def test_each_job_asks_for_what_its_node_can_hold(
    budget: ContextBudget, node_context: int | None, completed: int, expected: int
) -> None:
    assert budget.job_max_tokens(node_context, completed) == expected


def test_the_context_needed_to_be_chosen() -> None:
    assert ContextBudget(10, 100, fill_context=False).min_context == 110
    assert ContextBudget(10, 2038, fill_context=True).min_context == 11


@pytest.fixture(scope="module")
def vocabularies(smollm2_path: Path, gemma_path: Path) -> list[object]:
    from llama_cpp import Llama

    return [Llama(str(path), vocab_only=True, verbose=False) for path in (smollm2_path, gemma_path)]


TEXT = st.text(
    alphabet=st.sampled_from([*"#= \n\t-_*.ab", "\u2014", "\u2500", "\u00e9", "\u0b95"]),
    max_size=2000,
) | st.builds(lambda run, n: run * n, st.sampled_from(["#", " ", "=", "\u2014", "\n  "]),
              st.integers(0, 3000))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=TEXT)
def test_the_floor_is_never_above_what_a_served_tokenizer_counts(
    vocabularies: list[object], text: str
) -> None:
    """Runs of the characters vocabularies pack longest (``#``, spaces, dashes, box rules) are
    where a bytes-per-token bound breaks first."""
    floor = prompt_token_floor(user(text))
    for llm in vocabularies:
        tokens = llm.tokenize(text.encode(), add_bos=False, special=False)  # type: ignore[attr-defined]
        assert floor <= len(tokens)
