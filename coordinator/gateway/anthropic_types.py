"""Anthropic's Messages bodies, and their translation to and from Koretex's one generation
request (pure).

A Messages request becomes the same conversation, tools and sampling parameters a Chat
Completions request does: tool results become ``tool`` turns, ``tool_use`` blocks become calls,
``tool_choice`` ``any`` is ``required``. The answer comes back as content blocks and Anthropic's
stop reasons. Model ids are Koretex's own.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coordinator.gateway.sampling import refused
from coordinator.gateway.tools import ToolAnswer, ToolChoice
from protocol.chat import MAX_TOOLS, ChatMessage, FunctionTool, SamplingParams, ToolCall
from protocol.constraints import schema_problem

MAX_STOP_SEQUENCES = 16

UNSUPPORTED: dict[str, str] = {
    "thinking": "no Koretex model offers extended thinking",
    "mcp_servers": "MCP servers are not offered",
    "container": "code execution containers are not offered",
    "inference_geo": "a node's region cannot be chosen",
    "diagnostics": "prompt-cache diagnostics are not offered",
}


class TextBlock(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ToolUseBlock(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["tool_use"]
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    input: dict[str, Any]


class ToolResultBlock(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1, max_length=64)
    content: str | list[TextBlock] = ""
    is_error: bool = False

    def text(self) -> str:
        text = self.content if isinstance(self.content, str) else "".join(
            block.text for block in self.content
        )
        return f"Error: {text}" if self.is_error else text


Block = Annotated[TextBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str | list[Block]

    @model_validator(mode="before")
    @classmethod
    def _text_and_tools_only(cls, value: Any) -> Any:
        blocks = value.get("content") if isinstance(value, dict) else None
        for block in blocks if isinstance(blocks, list) else ():
            kind = block.get("type") if isinstance(block, dict) else None
            if kind in ("image", "document"):
                raise refused(f"the model does not accept {kind} blocks: send text only")
            if kind in ("thinking", "redacted_thinking", "server_tool_use"):
                raise refused(f"{kind} blocks are not offered")
        return value


class ToolDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = Field(default="", max_length=10_000)
    input_schema: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _custom_tools_only(cls, value: Any) -> Any:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind not in (None, "custom"):
            raise refused(f"tools: the server tool {kind!r} is not offered", "tools")
        return value


class ToolChoiceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class JsonOutputFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")

    @model_validator(mode="after")
    def _compiles(self) -> JsonOutputFormat:
        problem = schema_problem(self.schema_)
        if problem is not None:
            raise refused(f"output_config.format: the schema cannot be enforced: {problem}",
                          "output_config")
        return self


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: JsonOutputFormat | None = None
    effort: None = None  # no Koretex model takes an effort level

    @model_validator(mode="before")
    @classmethod
    def _no_effort(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("effort") is not None:
            raise refused("output_config.effort: no Koretex model takes an effort level",
                          "output_config")
        return value


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str | None = Field(default=None, max_length=256)


class MessagesRequest(BaseModel):
    """``POST /v1/messages``."""

    model_config = ConfigDict(extra="forbid")
    UNSUPPORTED: ClassVar[dict[str, str]] = UNSUPPORTED

    model: str = Field(min_length=1, max_length=200)
    max_tokens: int = Field(ge=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = Field(default=None, max_length=MAX_STOP_SEQUENCES)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool = False
    tools: list[ToolDefinition] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: ToolChoiceSpec | None = None
    output_config: OutputConfig | None = None
    metadata: Metadata | None = None
    # Accepted as their documented meaning allows: hints and bookkeeping that change no answer.
    service_tier: Literal["auto", "standard_only"] | None = None
    speed: Literal["standard"] | None = None
    cache_control: dict[str, Any] | None = None  # there is no prompt cache to mark
    user_profile_id: str | None = Field(default=None, max_length=256)
    workspace_id: str | None = Field(default=None, max_length=256)

    @model_validator(mode="before")
    @classmethod
    def _unsupported_are_named(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for name in UNSUPPORTED.keys() & value.keys():
            if value[name] is not None:
                raise refused(f"{name}: {UNSUPPORTED[name]}", name)
        return {key: item for key, item in value.items() if item is not None}

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> MessagesRequest:
        names = {tool.name for tool in self.tools or ()}
        choice = self.tool_choice
        if choice is not None and choice.type == "tool" and choice.name not in names:
            raise refused(f"tool_choice: no tool is named {choice.name!r}", "tool_choice")
        if choice is not None and choice.type in ("any", "tool") and not names:
            raise refused("tool_choice: there are no tools to choose from", "tool_choice")
        if self.output_format() is not None and self.wire_tools():
            raise refused("output_config.format together with tools is not supported yet",
                          "output_config")
        return self

    def output_format(self) -> dict[str, Any] | None:
        """The JSON schema the answer must follow (``output_config.format``), if any."""
        config = self.output_config
        return config.format.schema_ if config is not None and config.format else None

    def conversation(self) -> tuple[ChatMessage, ...]:
        """The messages as Koretex's turns: the system prompt first, tool results as ``tool``
        turns (before the user's own text in the same message), tool uses as calls."""
        turns: list[ChatMessage] = []
        system = self.system if isinstance(self.system, str) else "".join(
            block.text for block in self.system or ()
        )
        if system:
            turns.append(ChatMessage(role="system", content=system))
        for message in self.messages:
            if isinstance(message.content, str):
                turns.append(ChatMessage(role=message.role, content=message.content))
                continue
            text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
            if message.role == "assistant":
                calls = tuple(
                    ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input))
                    for b in message.content if isinstance(b, ToolUseBlock)
                )
                turns.append(ChatMessage(role="assistant", content=text, tool_calls=calls))
                continue
            turns.extend(
                ChatMessage(role="tool", content=b.text(), tool_call_id=b.tool_use_id)
                for b in message.content if isinstance(b, ToolResultBlock)
            )
            if text or not any(isinstance(b, ToolResultBlock) for b in message.content):
                turns.append(ChatMessage(role="user", content=text))
        return tuple(turns)

    def wire_tools(self) -> tuple[FunctionTool, ...]:
        if self.tool_choice is not None and self.tool_choice.type == "none":
            return ()
        return tuple(
            FunctionTool(name=t.name, description=t.description, parameters=t.input_schema)
            for t in self.tools or ()
        )

    def chosen_tool(self) -> ToolChoice:
        choice = self.tool_choice
        if choice is None or choice.type == "auto":
            return "auto"
        if choice.type == "any":
            return "required"
        if choice.type == "tool":
            return choice.name or "auto"
        return "none"

    def parallel(self) -> bool:
        return self.tool_choice is None or not self.tool_choice.disable_parallel_tool_use

    def sampling(self, max_tokens: int, json_schema: dict[str, Any] | None) -> SamplingParams:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=self.top_k or 0,
            stop=tuple(s for s in self.stop_sequences or () if s),
            json_schema=json_schema,
        )


class CountTokensRequest(MessagesRequest):
    """``POST /v1/messages/count_tokens``: a Messages request without ``max_tokens``."""

    max_tokens: int = Field(default=1, ge=1)


class InputTokens(BaseModel):
    input_tokens: int


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class AnswerUsage(BaseModel):
    input_tokens: int
    output_tokens: int


class AnswerText(BaseModel):
    type: Literal["text"] = "text"
    text: str


class AnswerToolUse(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class MessageAnswer(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[AnswerText | AnswerToolUse]
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: AnswerUsage


def answer_blocks(answer: ToolAnswer) -> tuple[list[AnswerText | AnswerToolUse], StopReason]:
    """An answer's content blocks and stop reason."""
    blocks: list[AnswerText | AnswerToolUse] = []
    if answer.content:
        blocks.append(AnswerText(text=answer.content))
    for call in answer.calls:
        arguments = json.loads(call.arguments)
        blocks.append(AnswerToolUse(
            id=tool_use_id(), name=call.name,
            input=arguments if isinstance(arguments, dict) else {},
        ))
    return blocks, stop_reason(answer.finish_reason)


def stop_reason(finish_reason: str) -> StopReason:
    return {"length": "max_tokens", "tool_calls": "tool_use"}.get(  # type: ignore[return-value]
        finish_reason, "end_turn"
    )


def tool_use_id() -> str:
    return "toolu_" + secrets.token_urlsafe(16)


def message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


class AnthropicError(BaseModel):
    type: str
    message: str


class AnthropicErrorBody(BaseModel):
    type: Literal["error"] = "error"
    error: AnthropicError


ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    503: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error shape for a response of ``status``."""
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                       "message": message}}
