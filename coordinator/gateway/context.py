"""What a request needs of a node's context, decided before any node sees it (pure).

The gateway has no tokenizer, so it reasons with a floor on the prompt's tokens: a prompt has
at least one token for every :data:`PROMPT_BYTES_PER_TOKEN_CEILING` bytes of its messages. Being
a floor, it never refuses a request that fits; a node whose context is too small after all
refuses the job itself (``context_length``), and the job moves to a node of larger context
(:func:`coordinator.gateway.completion.stream_completion`), or is this module's 400.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.errors import ContextLengthExceeded, InvalidRequest
from protocol.chat import ChatMessage

PROMPT_BYTES_PER_TOKEN_CEILING = 128
"""More UTF-8 bytes than any token of a vocabulary the network serves holds (SmolLM2's
longest, a run of 80 ``#``, is 81 bytes; Gemma 3's about 48)."""


def prompt_token_floor(messages: tuple[ChatMessage, ...]) -> int:
    """The fewest tokens the messages can take, whatever the tokenizer and chat template."""
    return sum(-(-len(m.content.encode()) // PROMPT_BYTES_PER_TOKEN_CEILING) for m in messages)


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """How much context one request needs, and what its jobs ask for."""

    prompt_floor: int
    max_tokens: int
    """The consumer's max_tokens; or, when ``fill_context``, the most any node could generate
    (what the credit hold is sized on)."""
    fill_context: bool
    """The consumer left max_tokens unset: generate up to the chosen node's context."""

    @property
    def min_context(self) -> int:
        """The smallest context a node must offer to be worth choosing."""
        return self.prompt_floor + (1 if self.fill_context else self.max_tokens)

    def job_max_tokens(self, node_context: int | None, completed: int = 0) -> int:
        """The max_tokens of a job to a node of ``node_context`` after ``completed`` tokens
        were delivered: what is left of the request's, and for a request that fills the context
        no more than the node's context leaves after the prompt (the node lowers it further to
        the room its own count of the prompt leaves)."""
        remaining = max(1, self.max_tokens - completed)
        if self.fill_context and node_context is not None:
            return max(1, min(remaining, node_context - self.prompt_floor - completed))
        return remaining


def context_budget(
    messages: tuple[ChatMessage, ...], requested: int | None, *, largest_context: int | None,
    catalogue_context: int, max_tokens_limit: int,
) -> ContextBudget:
    """The budget of a request asking for ``requested`` completion tokens (``None``: up to the
    context), given the largest context a live node serves the model with (``None``: no live
    node has declared one, and the catalogue's context stands in for it).

    Raises :class:`ContextLengthExceeded` when no live node's context can hold the request and
    :class:`InvalidRequest` for a max_tokens over the network's limit (a hard cap on any one
    answer, and on the credits held for it).
    """
    floor = prompt_token_floor(messages)
    if requested is not None:
        if requested > max_tokens_limit:
            raise InvalidRequest(
                f"max_tokens may be at most {max_tokens_limit}", param="max_tokens"
            )
        if largest_context is not None and floor + requested > largest_context:
            raise context_exceeded(largest_context, floor, requested)
        return ContextBudget(floor, requested, fill_context=False)
    context = largest_context if largest_context is not None else catalogue_context
    room = context - floor
    if room < 1:
        if largest_context is not None:
            raise context_exceeded(largest_context, floor, None)
        room = 1  # no live node: the request waits for one, or is a 503
    return ContextBudget(floor, min(room, max_tokens_limit), fill_context=True)


def context_exceeded(
    context: int, prompt_floor: int, completion: int | None
) -> ContextLengthExceeded:
    """OpenAI's 400 for a request that no live node's context holds."""
    asked = (
        f"However, you requested at least {prompt_floor + completion} tokens "
        f"(at least {prompt_floor} in the messages, {completion} in the completion)"
        if completion is not None
        else f"However, your messages take at least {prompt_floor} tokens, leaving no room for "
        "a completion"
    )
    return ContextLengthExceeded(
        f"This model's maximum context length is {context} tokens. {asked}. Please reduce the "
        "length of the messages or completion.",
        param="messages",
    )


def context_refused(context: int | None, node_message: str) -> ContextLengthExceeded:
    """OpenAI's 400 for a request the node of the largest context refused as too long."""
    largest = f"This model's maximum context length is {context} tokens. " if context else ""
    return ContextLengthExceeded(
        f"{largest}However, the messages and completion requested do not fit it "
        f"({node_message}). Please reduce the length of the messages or completion.",
        param="messages",
    )
