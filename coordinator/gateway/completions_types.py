"""OpenAI's legacy Completions bodies (``POST /v1/completions``): a prompt continued as written.

The way base models (no chat template) are served, and a raw prompt to any model. Every
parameter is honoured or refused by name, as on Chat Completions.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from coordinator.gateway.openai_types import StreamOptions, Usage
from coordinator.gateway.sampling import SamplingRequest, refused

LEGACY_DEFAULT_MAX_TOKENS = 16
"""OpenAI's documented default for this API (Chat Completions' is "up to the context")."""
MAX_LEGACY_LOGPROBS = 5


class CompletionRequest(SamplingRequest):
    UNSUPPORTED: ClassVar[dict[str, str]] = {
        "suffix": "no Koretex model is served with fill-in-the-middle: send the prompt only",
    }

    model: str = Field(min_length=1, max_length=200)
    prompt: str | list[str]
    max_tokens: int = Field(default=LEGACY_DEFAULT_MAX_TOKENS, ge=1)
    n: Literal[1] = 1
    best_of: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(default=None, ge=0, le=MAX_LEGACY_LOGPROBS)
    echo: bool = False

    @classmethod
    def refuse(cls, value: dict[str, Any]) -> None:
        prompt = value.get("prompt")
        if isinstance(prompt, list):
            if any(not isinstance(item, str) for item in prompt):
                raise refused("prompt: token arrays are not supported; send text", "prompt")
            if len(prompt) != 1:
                raise refused("prompt: one prompt per request is supported", "prompt")
        for name in ("n", "best_of"):
            if value.get(name) not in (None, 1):
                raise refused(f"{name}: one choice per request is supported", name)
        if value.get("echo") and value.get("logprobs") is not None:
            raise refused(
                "echo: the prompt's own log-probabilities are not offered; ask for echo or "
                "logprobs", "echo",
            )

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    text: str
    index: int = 0
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
