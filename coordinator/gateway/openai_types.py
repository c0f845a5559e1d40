"""OpenAI chat-completion request and response bodies, as the gateway accepts and returns them.

Every request parameter is either honoured or refused with a 400 naming it: unknown fields are
refused as OpenAI refuses them, parameters Koretex cannot honour yet are refused with the reason,
and ``null`` for an optional field means its default (as many SDKs send it).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coordinator.gateway.sampling import ResponseFormat, SamplingRequest, refused
from coordinator.gateway.tools import ToolChoice, answer_schema_for_tools
from protocol.chat import MAX_TOOLS, ChatMessage, FunctionTool, ToolCall
from protocol.constraints import schema_problem

FUNCTION_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_CHOICES = 8
"""The most choices one request may ask for: each is a job, and the hold is n times one's."""

# Parameters OpenAI documents that Koretex does not honour: refused by name, never ignored.
UNSUPPORTED_PARAMETERS: dict[str, str] = {
    "audio": "audio output is not offered: Koretex models produce text",
    "prediction": "predicted outputs are not supported",
    "functions": "the deprecated functions parameter is not supported: send tools",
    "function_call": "the deprecated function_call parameter is not supported: send tool_choice",
    "web_search_options": "web search is not offered",
    "reasoning_effort": "no Koretex model takes a reasoning effort",
}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class CalledFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=FUNCTION_NAME)
    arguments: str = Field(max_length=100_000)


class RequestToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=64)
    type: Literal["function"] = "function"
    function: CalledFunction


class RequestMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[RequestToolCall] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _text_messages_only(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if value.get("role") == "tool" and not value.get("tool_call_id"):
            raise refused("a tool message answers a call: it needs its tool_call_id")
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
        calls = tuple(
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
            for call in self.tool_calls or () if self.role == "assistant"
        )
        return ChatMessage(
            role=role, content=text, tool_calls=calls,
            tool_call_id=self.tool_call_id if self.role == "tool" else None,
        )


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = Field(default=None, max_length=10_000)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # calls always follow the parameters' schema: it is enforced


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: FunctionSpec

    def to_wire(self) -> FunctionTool:
        function = self.function
        return FunctionTool(
            name=function.name, description=function.description or "",
            parameters=function.parameters or {"type": "object", "properties": {}},
        )


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=FUNCTION_NAME)


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: NamedFunction


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
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    modalities: list[Literal["text"]] | None = Field(default=None, max_length=1)
    tools: list[ToolSpec] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Accepted and not acted on, as their documented meaning allows: attribution and bookkeeping.
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None

    @classmethod
    def refuse(cls, value: dict[str, Any]) -> None:
        modalities = value.get("modalities")
        if isinstance(modalities, list) and any(modality != "text" for modality in modalities):
            raise refused("modalities: Koretex models produce text only", "modalities")
        if value.get("stream") and value.get("n") not in (None, 1):
            raise refused("n: several choices are answered whole, not streamed", "n")
        tools = value.get("tools")
        if value.get("tool_choice") is not None and not tools:
            raise refused("tool_choice: there are no tools to choose from", "tool_choice")
        if tools and value.get("tool_choice") != "none":
            response_format = value.get("response_format")
            if isinstance(response_format, dict) and response_format.get("type") != "text":
                raise refused(
                    "response_format: a JSON response format together with tools is not "
                    "supported yet", "response_format",
                )
            if value.get("logprobs"):
                raise refused("logprobs: not offered together with tools", "logprobs")

    @model_validator(mode="after")
    def _tool_choice_names_a_tool_and_calls_can_be_enforced(self) -> ChatCompletionRequest:
        names = [tool.function.name for tool in self.tools or ()]
        if len(set(names)) != len(names):
            raise refused("tools: two tools share a name", "tools")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise refused(
                f"tool_choice: no tool is named {choice.function.name!r}", "tool_choice"
            )
        schema = self.tool_answer_schema()
        problem = schema_problem(schema) if schema is not None else None
        if problem is not None:
            raise refused(f"tools: a function's parameters cannot be enforced: {problem}", "tools")
        return self

    def wire_tools(self) -> tuple[FunctionTool, ...]:
        """The tools the model is told of (none under ``tool_choice: none``)."""
        if self.tool_choice == "none":
            return ()
        return tuple(tool.to_wire() for tool in self.tools or ())

    def chosen_tool(self) -> ToolChoice:
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return choice.function.name
        return choice or "auto"

    def tool_answer_schema(self) -> dict[str, Any] | None:
        """The shape every answer takes when tools are offered (None: free text)."""
        return answer_schema_for_tools(
            self.wire_tools(), self.chosen_tool(), parallel=self.parallel_tool_calls is not False
        )

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


class FunctionCalled(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCalled


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCallOut] | None = None


FinishReason = Literal["stop", "length", "tool_calls"]


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class ToolCallDelta(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCalled


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


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
