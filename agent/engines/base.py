"""The interface every inference engine implements.

An engine loads one model's weights and streams chat completions from them. It runs blocking
inference off the event loop and stops within a token of being cancelled (closing the stream).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol

from protocol.chat import ChatMessage, SamplingParams, TokenLogprob


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    messages: tuple[ChatMessage, ...]
    params: SamplingParams
    top_logprobs: int = 0
    continuation: str = ""  # assistant text already delivered; generation carries on after it
    fill_context: bool = False  # max_tokens is a ceiling lowered to the context's room
    raw_prompt: bool = False
    """The one message's text is the prompt as written (legacy completions): no chat template."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringRequest:
    """Text to score after a chat prompt: by the ids another node reported, else by its text."""

    messages: tuple[ChatMessage, ...]
    text: str
    token_ids: tuple[int, ...] | None = None
    prefix: str = ""  # assistant text before the scored text: part of the prompt
    top_logprobs: int = 0


@dataclass(frozen=True, slots=True)
class GeneratedToken:
    text: str
    logprob: TokenLogprob | None = None
    counted: bool = True
    """False for the text held back and released at the end: it belongs to tokens already
    counted, and travels as a delta of no tokens."""


@dataclass(frozen=True, slots=True)
class GenerationFinished:
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int


GenerationEvent = GeneratedToken | GenerationFinished


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: str
    sha256: str
    context_length: int


class Engine(Protocol):
    """What the agent needs from an inference engine."""

    name: str

    @property
    def model(self) -> ModelInfo: ...

    async def load(self) -> None:
        """Load the weights; idempotent."""

    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Stream tokens, ending with one :class:`GenerationFinished`.

        Closing the iterator early cancels the generation. Raises
        :class:`agent.errors.RequestRejected` for unusable input and
        :class:`agent.errors.EngineError` when the engine fails.
        """

    async def score(self, request: ScoringRequest) -> tuple[TokenLogprob, ...]:
        """Each scored token's log-probability (and top alternatives) after the prompt.

        One prefill pass over prompt plus continuation, generating nothing; takes a slot like a
        generation. Raises :class:`agent.errors.RequestRejected` for unusable input (token ids
        outside the vocabulary, too long for the context).
        """
        ...

    async def close(self) -> None:
        """Release the weights and any threads."""
