"""Chat content and sampling parameters carried inside jobs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


class WireModel(BaseModel):
    """Base of every wire model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatMessage(WireModel):
    role: Role
    content: str


class SamplingParams(WireModel):
    max_tokens: int = Field(ge=1, le=10_000_000)  # protocol.messages.MAX_TOKEN_COUNT
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    seed: int | None = None


class TopLogprob(WireModel):
    token: str
    logprob: float


class TokenLogprob(WireModel):
    """The log-probability of one emitted token and of its strongest alternatives."""

    # None when the engine does not expose ids (a cloud upstream)
    token_id: int | None = Field(default=None, ge=0, le=2**31 - 1)
    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()
