"""Every message exchanged on the node websocket, as frozen pydantic models.

Each message carries a ``type`` tag; :func:`decode_node_message` and
:func:`decode_coordinator_message` turn a JSON text frame into the matching model and raise
:class:`pydantic.ValidationError` on anything else.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, model_validator

from protocol.chat import (
    MAX_TOOLS,
    ChatMessage,
    FunctionTool,
    SamplingParams,
    TokenLogprob,
    WireModel,
)
from protocol.ids import JobId, ModelId, NodeId

FinishReason = Literal["stop", "length"]

FailureCode = Literal[
    "bad_request",  # the consumer's input is unusable: neutral for the node
    "context_length",  # prompt plus max_tokens exceed the model's context: neutral
    "busy",  # every slot is taken: the coordinator should not have sent it
    "unsupported_model",  # the node does not serve the model named in the job
    "engine_error",  # the engine crashed or misbehaved: counts against the node
    "cancelled",  # the coordinator asked for it
    "draining",  # the node is shutting down and takes no new work
]

NEUTRAL_FAILURES: frozenset[str] = frozenset({"bad_request", "context_length"})
"""Failures caused by the consumer's input; they never count against a node."""

MAX_TOKEN_COUNT = 10_000_000
"""The most tokens any count on the wire may claim: far above any context window, and low
enough that a count times a price never overflows a 64-bit ledger column. A message claiming
more fails validation, and the node that sent it is disconnected."""
MAX_MICRO_CREDITS = 2**62


# --- node -> coordinator -----------------------------------------------------------------------


class Hardware(WireModel):
    system: str
    machine: str
    chip: str
    cores: int = Field(ge=0, le=1_000_000)
    memory_bytes: int = Field(ge=0, le=2**60)
    gpu: str | None = None


class ModelOffer(WireModel):
    """A catalogue model the node serves, and which weights it serves it with."""

    model: ModelId
    weights_sha256: str | None = None
    context_length: int = Field(ge=1, le=MAX_TOKEN_COUNT)


class Register(WireModel):
    """The node's answer to a challenge: who it is (signed) and what it offers."""

    type: Literal["register"] = "register"
    protocol_version: int
    node_id: NodeId
    nonce: str
    issued_at: str  # ISO 8601, UTC; part of the signed text
    signature: str  # base58 ed25519 signature over protocol.auth.challenge_text(...)
    agent_version: str = Field(max_length=64)
    engine: str = Field(max_length=32)
    models: tuple[ModelOffer, ...] = Field(min_length=1, max_length=32)
    slots: int = Field(ge=1, le=256)
    declared_tok_s: float | None = Field(default=None, ge=0)
    hardware: Hardware
    enrollment_token: str | None = None


class TokenDelta(WireModel):
    """One or more tokens the engine produced for a job, in order."""

    type: Literal["delta"] = "delta"
    job_id: JobId
    text: str
    tokens: int = Field(ge=0, le=MAX_TOKEN_COUNT)
    logprobs: tuple[TokenLogprob, ...] = ()


class JobDone(WireModel):
    type: Literal["done"] = "done"
    job_id: JobId
    finish_reason: FinishReason
    prompt_tokens: int = Field(ge=0, le=MAX_TOKEN_COUNT)
    completion_tokens: int = Field(ge=0, le=MAX_TOKEN_COUNT)


class JobFailed(WireModel):
    type: Literal["failed"] = "failed"
    job_id: JobId
    code: FailureCode
    message: str = Field(max_length=2000)
    param: str | None = Field(default=None, max_length=64, exclude_if=lambda param: param is None)
    """The request parameter a ``bad_request`` is about (``logit_bias``, ``response_format``),
    when it is not the messages: the consumer's 400 names it."""


class TokenScores(WireModel):
    """The answer to a :class:`ScoreRequest`: one entry per continuation token, in order."""

    type: Literal["scores"] = "scores"
    job_id: JobId
    logprobs: tuple[TokenLogprob, ...]


class Draining(WireModel):
    """The node stops taking jobs and finishes those in flight before it leaves."""

    type: Literal["draining"] = "draining"


NodeMessage = Annotated[
    Register | TokenDelta | JobDone | JobFailed | TokenScores | Draining,
    Field(discriminator="type"),
]


# --- coordinator -> node -----------------------------------------------------------------------


class Challenge(WireModel):
    type: Literal["challenge"] = "challenge"
    protocol_version: int
    domain: str
    nonce: str
    server_time: str


class Registered(WireModel):
    type: Literal["registered"] = "registered"
    node_id: NodeId
    operator: str | None = None  # the wallet this node earns for, once enrolled
    # micro-credits earned so far, if shared
    earned: int | None = Field(default=None, ge=0, le=MAX_MICRO_CREDITS)


class Job(WireModel):
    """A generation: a chat (``messages``, rendered by the model's template) or a raw prompt
    (one message, tokenized as written: legacy completions). Probes and paid jobs have exactly
    this shape."""

    type: Literal["job"] = "job"
    job_id: JobId
    model: ModelId
    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    params: SamplingParams
    tools: tuple[FunctionTool, ...] = Field(
        default=(), max_length=MAX_TOOLS, exclude_if=lambda tools: not tools
    )
    """Handed to the chat template's ``tools`` variable; the answer's shape is constrained by
    ``params.json_schema``."""
    raw_prompt: bool = Field(default=False, exclude_if=lambda raw: not raw)
    """The one message's text is the prompt as written, without the chat template (legacy
    completions). Sent only to nodes of ``SAMPLING_PROTOCOL_VERSION`` or later."""
    top_logprobs: int = Field(default=0, ge=0, le=20)
    continuation: str = ""  # assistant text already delivered; generation resumes after it
    fill_context: bool = Field(default=False, exclude_if=lambda fill: not fill)
    """The consumer left max_tokens unset (OpenAI's "up to the context"): ``params.max_tokens``
    is a ceiling the node lowers to the room its context leaves after the prompt, instead of
    refusing. Sent only to nodes of protocol version 3 or later; left out of the frame when
    false, so older nodes read the same jobs as before."""

    @property
    def plain_chat(self) -> bool:
        """A conversation rendered by the template as it stands: no raw prompt, no tools."""
        return not self.raw_prompt and not self.tools and not any(
            m.role == "tool" or m.tool_calls for m in self.messages
        )

    @property
    def needs_sampling_protocol(self) -> bool:
        """Whether only a node of ``SAMPLING_PROTOCOL_VERSION`` or later can honour this job."""
        return self.params.needs_sampling_protocol or not self.plain_chat

    @model_validator(mode="after")
    def _a_raw_prompt_is_one_message(self) -> Job:
        if self.raw_prompt and len(self.messages) != 1:
            raise ValueError("a raw prompt is exactly one message")
        return self


class ScoredContinuation(WireModel):
    """Text another node generated, to be scored token by token.

    ``token_ids`` are the ids that node reported; when it reported none (a cloud upstream), the
    scoring node tokenises ``text`` itself.
    """

    text: str
    token_ids: tuple[int, ...] | None = None


class ScoreRequest(WireModel):
    """Score ``continuation`` after the prompt in one prefill pass, generating nothing.

    ``prefix`` is assistant text that preceded the continuation in the scored answer (a resumed
    job's already-delivered text); it is part of the prompt, not scored. The node answers with
    :class:`TokenScores` or :class:`JobFailed` under the same ``job_id``. Sent only to nodes of
    protocol version 2 or later.
    """

    type: Literal["score"] = "score"
    job_id: JobId
    model: ModelId
    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    prefix: str = ""
    continuation: ScoredContinuation
    top_logprobs: int = Field(default=0, ge=0, le=20)


class Cancel(WireModel):
    type: Literal["cancel"] = "cancel"
    job_id: JobId


CoordinatorMessage = Annotated[
    Challenge | Registered | Job | ScoreRequest | Cancel, Field(discriminator="type")
]

_node_adapter: TypeAdapter[NodeMessage] = TypeAdapter(NodeMessage)
_coordinator_adapter: TypeAdapter[CoordinatorMessage] = TypeAdapter(CoordinatorMessage)


def decode_node_message(frame: str | bytes) -> NodeMessage:
    """Parse a frame sent by a node; raises ``pydantic.ValidationError``."""
    return _node_adapter.validate_json(frame)


def decode_coordinator_message(frame: str | bytes) -> CoordinatorMessage:
    """Parse a frame sent by the coordinator; raises ``pydantic.ValidationError``."""
    return _coordinator_adapter.validate_json(frame)


def encode(message: WireModel) -> str:
    """The JSON text frame for a message."""
    return message.model_dump_json()
