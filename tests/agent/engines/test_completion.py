"""The bookkeeping of one answer as its tokens arrive, without an engine."""

from __future__ import annotations

import pytest

from agent.engines.base import GeneratedToken, GenerationFinished
from agent.engines.completion import Completion, refuse_context_overflow
from agent.errors import ContextLengthExceeded
from protocol.chat import SamplingParams


def completion(max_tokens: int = 8, stop: tuple[str, ...] = ()) -> Completion:
    return Completion(SamplingParams(max_tokens=max_tokens, stop=stop), prompt_tokens=7)


def test_max_tokens_complete_the_answer_with_length() -> None:
    answer = completion(max_tokens=2)
    assert answer.token(b"Red", None) == GeneratedToken("Red")
    assert not answer.complete
    assert answer.token(b" and", None) == GeneratedToken(" and")
    assert answer.complete
    assert answer.finish() == [GenerationFinished("length", 7, 2)]


def test_the_end_of_the_turn_finishes_with_stop_and_is_not_counted() -> None:
    answer = completion()
    answer.token(b"Red", None)
    answer.end_turn()
    assert answer.finish() == [GenerationFinished("stop", 7, 1)]


def test_a_character_split_across_tokens_streams_once_whole() -> None:
    answer = completion()
    first, second = "é".encode()[:1], "é".encode()[1:]
    assert answer.token(first, None).text == ""
    assert answer.token(second, None).text == "é"
    assert answer.finish() == [GenerationFinished("length", 7, 2)]


def test_a_stop_string_cuts_the_text_and_drops_what_was_held() -> None:
    answer = completion(stop=("blue",))
    assert answer.token(b"red bl", None).text == "red "  # "bl" may start the stop
    assert not answer.complete
    assert answer.token(b"ue sky", None).text == ""
    assert answer.complete
    assert answer.finish() == [GenerationFinished("stop", 7, 2)]


def test_text_held_for_a_stop_that_never_came_is_released_at_the_end() -> None:
    answer = completion(stop=("blue",))
    assert answer.token(b"red bl", None).text == "red "
    assert answer.token("é".encode()[:1], None).text == ""
    answer.end_turn()
    # An unfinished UTF-8 sequence at the end comes out as the replacement character.
    # It belongs to tokens already counted: it is released uncounted (a delta of no tokens).
    assert answer.finish() == [
        GeneratedToken("bl\N{REPLACEMENT CHARACTER}", counted=False),
        GenerationFinished("stop", 7, 2),
    ]


def test_a_prompt_and_max_tokens_must_fit_the_context() -> None:
    refuse_context_overflow(prompt_tokens=500, max_tokens=12, context_length=512)
    with pytest.raises(ContextLengthExceeded, match="prompt \\(500 tokens\\) plus max_tokens "
                       "\\(13\\) exceeds the context length of 512"):
        refuse_context_overflow(prompt_tokens=500, max_tokens=13, context_length=512)
