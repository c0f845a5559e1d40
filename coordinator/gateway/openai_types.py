"""OpenAI chat-completion request and response bodies, as the gateway accepts and returns them.

Every request parameter is either honoured or refused with a 400 naming it: unknown fields are
refused as OpenAI refuses them, parameters Koretex cannot honour yet are refused with the reason,
and ``null`` for an optional field means its default (as many SDKs send it).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coordinator.gateway.sampling import ResponseFormat, SamplingRequest, refused
from protocol.chat import ChatMessage

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


class ChatCompletionRequest(SamplingRequest):
    """A Chat Completions request: the sampling fields, and the conversation."""

    UNSUPPORTED: ClassVar[dict[str, str]] = UNSUPPORTED_PARAMETERS

    model: str = Field(min_length=1, max_length=200)
    messages: list[RequestMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    modalities: list[Literal["text"]] | None = Field(default=None, max_length=1)
    # Accepted and not acted on, as their documented meaning allows: attribution and bookkeeping.
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None

    @classmethod
    def refuse(cls, value: dict[str, Any]) -> None:
        modalities = value.get("modalities")
        if isinstance(modalities, list) and any(modality != "text" for modality in modalities):
            raise refused("modalities: Koretex models produce text only", "modalities")
        if value.get("n") not in (None, 1):
            raise refused("n: one choice per request is supported", "n")

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
