"""Chat content and sampling parameters carried inside jobs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]

JsonSchema = dict[str, Any]

MAX_TOOLS = 128
MAX_LOGIT_BIAS = 300  # as OpenAI bounds it


class WireModel(BaseModel):
    """Base of every wire model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolCall(WireModel):
    """A function call the model made: its arguments are the JSON object text it wrote."""

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    arguments: str


class ChatMessage(WireModel):
    """One turn. An assistant turn may carry the tool calls it made; a ``tool`` turn is the
    result of the call ``tool_call_id`` names. Both are rendered by the model's own template
    (the Hugging Face message shape), and left out of the frame when absent."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = Field(
        default=(), max_length=MAX_TOOLS, exclude_if=lambda calls: not calls
    )
    tool_call_id: str | None = Field(
        default=None, max_length=64, exclude_if=lambda call_id: call_id is None
    )


class FunctionTool(WireModel):
    """A function the model may call, handed to its chat template's ``tools`` variable."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = Field(default="", max_length=10_000)
    parameters: JsonSchema = Field(default_factory=lambda: {"type": "object", "properties": {}})


class SamplingParams(WireModel):
    max_tokens: int = Field(ge=1, le=10_000_000)  # protocol.messages.MAX_TOKEN_COUNT
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # Each below is left out of the frame at its neutral value, so a job that uses none of
    # them reads the same to a node of protocol version 3 (see protocol.SAMPLING_PROTOCOL_VERSION).
    top_k: int = Field(default=0, ge=0, le=1_000_000, exclude_if=lambda k: k == 0)  # 0: off
    min_p: float = Field(default=0.0, ge=0.0, le=1.0, exclude_if=lambda p: p == 0.0)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0, exclude_if=lambda x: x == 0.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0, exclude_if=lambda x: x == 0.0)
    repetition_penalty: float = Field(  # llama.cpp's repeat_penalty; 1.0: off
        default=1.0, gt=0.0, le=10.0, exclude_if=lambda x: x == 1.0
    )
    logit_bias: dict[int, float] = Field(  # token id -> bias in [-100, 100], added to its logit
        default_factory=dict, max_length=MAX_LOGIT_BIAS, exclude_if=lambda bias: not bias
    )
    json_schema: JsonSchema | None = Field(default=None, exclude_if=lambda schema: schema is None)
    """Constrained decoding: the answer is JSON valid against this schema (llguidance on every
    engine; forwarded as ``response_format`` to a cloud upstream). Tool calls are constrained
    the same way, by a schema the coordinator builds from the tools."""

    @property
    def needs_sampling_protocol(self) -> bool:
        """Whether a node must be of ``SAMPLING_PROTOCOL_VERSION`` to honour these parameters."""
        return self.top_k != 0 or self.min_p != 0.0 or self.steers_choice

    @property
    def steers_choice(self) -> bool:
        """Whether tokens are chosen on more than the model's own distribution (penalties,
        biases, a constraint): such an answer cannot be re-scored against that distribution."""
        return bool(
            self.presence_penalty or self.frequency_penalty or self.repetition_penalty != 1.0
            or self.logit_bias or self.json_schema is not None
        )


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
