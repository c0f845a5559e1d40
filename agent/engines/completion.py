"""One generation's answer as its tokens arrive: the bookkeeping every engine's loop shares.

An engine's loop samples tokens; a :class:`Completion` turns each token's bytes into the text
safe to stream (UTF-8 decoded across token boundaries, text that may start a stop string held
back), counts the completion tokens and decides how the generation finished. Pure: no engine,
no thread, no clock.
"""

from __future__ import annotations

import codecs
from typing import Literal

from agent.engines.base import GeneratedToken, GenerationEvent, GenerationFinished
from agent.engines.stops import StopScanner
from agent.errors import ContextLengthExceeded
from protocol.chat import SamplingParams, TokenLogprob


def refuse_context_overflow(prompt_tokens: int, max_tokens: int, context_length: int) -> None:
    """Raise :class:`ContextLengthExceeded` unless prompt plus max_tokens fit the context."""
    if prompt_tokens + max_tokens > context_length:
        raise ContextLengthExceeded(
            f"prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the "
            f"context length of {context_length}"
        )


def params_within_context(
    prompt_tokens: int, params: SamplingParams, context_length: int, *, fill_context: bool
) -> SamplingParams:
    """The sampling parameters to generate with after a prompt of ``prompt_tokens``.

    A job that fills the context (its consumer left max_tokens unset) has its ceiling lowered to
    the room the context leaves; any other job keeps its max_tokens, or is refused
    (:class:`ContextLengthExceeded`) when prompt and max_tokens do not fit.
    """
    if fill_context:
        room = context_length - prompt_tokens
        if room < 1:
            raise ContextLengthExceeded(
                f"prompt ({prompt_tokens} tokens) leaves no room in the context length of "
                f"{context_length}"
            )
        if room < params.max_tokens:
            return params.model_copy(update={"max_tokens": room})
        return params
    refuse_context_overflow(prompt_tokens, params.max_tokens, context_length)
    return params


class Completion:
    """The answer of one generation with ``params``, after a prompt of ``prompt_tokens``."""

    def __init__(self, params: SamplingParams, prompt_tokens: int) -> None:
        self._max_tokens = params.max_tokens
        self._prompt_tokens = prompt_tokens
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._scanner = StopScanner(params.stop)
        self._produced = 0
        self._finish: Literal["stop", "length"] = "length"
        self._stop_hit = False

    def end_turn(self) -> None:
        """The model ended its turn (a stop token, which is not part of the answer)."""
        self._finish = "stop"

    def token(self, piece: bytes, logprob: TokenLogprob | None) -> GeneratedToken:
        """The event for one generated token adding ``piece`` to the text."""
        self._produced += 1
        text, hit = self._scanner.feed(self._decoder.decode(piece))
        if hit:
            self._finish, self._stop_hit = "stop", True
        return GeneratedToken(text=text, logprob=logprob)

    @property
    def complete(self) -> bool:
        """Whether to sample no more: a stop string was hit, or max_tokens are generated."""
        return self._stop_hit or self._produced >= self._max_tokens

    def finish(self) -> list[GenerationEvent]:
        """The closing events: text held back for a stop that never came, then the finish."""
        events: list[GenerationEvent] = []
        if not self._stop_hit:  # released even if the turn ended
            tail = self._scanner.flush() + self._decoder.decode(b"", final=True)
            if tail:
                events.append(GeneratedToken(text=tail, counted=False))
        events.append(GenerationFinished(self._finish, self._prompt_tokens, self._produced))
        return events
