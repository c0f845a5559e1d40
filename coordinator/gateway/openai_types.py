"""OpenAI chat-completion request and response bodies, as the gateway accepts and returns them.

Every request parameter is either honoured or refused with a 400 naming it: unknown fields are
refused as OpenAI refuses them, parameters Koretex cannot honour yet are refused with the reason,
and ``null`` for an optional field means its default (as many SDKs send it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from protocol.chat import MAX_LOGIT_BIAS, ChatMessage
from protocol.constraints import ANY_JSON_OBJECT, schema_problem

# Parameters OpenAI documents that Koretex does not honour: refused by name, never ignored.
UNSUPPORTED_PARAMETERS: dict[str, str] = {
    "audio": "audio output is not offered: Koretex models produce text",
    "prediction": "predicted outputs are not supported",
    "tools": "tool calling is not supported yet",
    "tool_choice": "tool calling is not supported yet",
    "parallel_tool_calls": "tool calling is not supported yet",
    "functions": "function calling is not supported yet",
    "function_call": "function calling is not supported yet",
    "web_search_options": "web search is not offered",
    "reasoning_effort": "no Koretex model takes a reasoning effort",
}


def refused(message: str, param: str | None = None) -> PydanticCustomError:
    """A refusal; ``param`` names the parameter where the error's location cannot."""
    return PydanticCustomError("unsupported_parameter", message, {"param": param})


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class RequestMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    @model_validator(mode="before")
    @classmethod
    def _text_messages_only(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if value.get("role") == "tool" or value.get("tool_calls"):
            raise refused("tool messages and tool calls are not supported yet")
        parts = value.get("content")
        for part in parts if isinstance(parts, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("image_url", "input_image"):
                raise refused("the model does not accept images: send text content only")
            if kind in ("input_audio", "file"):
                raise refused(f"the model does not accept {kind} parts: send text content only")
        return value

    def to_chat(self) -> ChatMessage:
        role = "system" if self.role == "developer" else self.role
        if isinstance(self.content, list):
            text = "".join(part.text for part in self.content)
        else:
            text = self.content or ""
        return ChatMessage(role=role, content=text)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_object"]


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = Field(default=None, max_length=10_000)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None  # every answer follows the schema, strict or not: it is enforced


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec

    @model_validator(mode="after")
    def _compiles(self) -> JsonSchemaFormat:
        problem = schema_problem(self.json_schema.schema_)
        if problem is not None:
            raise refused(
                f"response_format: the JSON schema cannot be enforced: {problem}",
                "response_format",
            )
        return self


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


def answer_schema(response_format: TextFormat | JsonObjectFormat | JsonSchemaFormat | None) -> (
    dict[str, Any] | None
):
    """The JSON schema every answer must follow under ``response_format`` (None: free text)."""
    if isinstance(response_format, JsonObjectFormat):
        return ANY_JSON_OBJECT
    if isinstance(response_format, JsonSchemaFormat):
        return response_format.json_schema.schema_
    return None


def token_biases(logit_bias: dict[str, float] | None) -> dict[int, float]:
    """OpenAI's ``logit_bias`` (token ids as strings) as the wire's token ids."""
    return {int(token): bias for token, bias in (logit_bias or {}).items()}


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    messages: list[RequestMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    modalities: list[Literal["text"]] | None = Field(default=None, max_length=1)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = Field(default=None, max_length=MAX_LOGIT_BIAS)
    # Extensions as vLLM and llama.cpp's server take them (-1 is their "off" for top_k).
    top_k: int | None = Field(default=None, ge=-1, le=1_000_000)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    # Accepted and not acted on, as their documented meaning allows: attribution and bookkeeping.
    user: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults_and_unsupported_are_named(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for name in UNSUPPORTED_PARAMETERS.keys() & value.keys():
            if value[name] is not None:
                raise refused(f"{name}: {UNSUPPORTED_PARAMETERS[name]}", name)
        # Shapes are checked by the fields below; these checks only read what is well formed.
        modalities = value.get("modalities")
        if isinstance(modalities, list) and any(modality != "text" for modality in modalities):
            raise refused("modalities: Koretex models produce text only", "modalities")
        if value.get("n") not in (None, 1):
            raise refused("n: one choice per request is supported", "n")
        return {
            key: item for key, item in value.items()
            if item is not None and key not in UNSUPPORTED_PARAMETERS
        }

    @field_validator("logit_bias")
    @classmethod
    def _biases_name_tokens(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (value or {}).items():
            if not token.isdigit() or len(token) > 9:
                raise ValueError(f"{token!r} is not a token id")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"the bias of token {token} must lie in [-100, 100]")
        return value

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(s for s in self.stop if s)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprobOut(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(TopLogprobOut):
    top_logprobs: list[TopLogprobOut]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelEntry(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "koretex"
    nodes: int
    credits_per_1m: Annotated[dict[str, int], Field(description="input and output prices")]
    context_length: int
    chat_template: Annotated[bool, Field(
        description="Whether the model chats (its weights carry a chat template); a model without"
        " one is a completion model, served by /v1/completions only",
    )] = True
    bounty_multiplier: Annotated[float, Field(
        ge=1.0, description="What serving nodes' pay for this model is multiplied by now (1.0: no"
        " bounty); see /v1/network/bounties",
    )] = 1.0


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelEntry]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


JsonObject = dict[str, Any]
