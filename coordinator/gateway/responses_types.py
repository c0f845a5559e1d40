"""OpenAI's Responses bodies, and their translation to and from Koretex's one generation request
(pure).

``input`` (a string, or items: messages with ``input_text`` / ``output_text`` parts,
``function_call`` and ``function_call_output`` items) becomes the same turns a Chat Completions
request does, ``instructions`` a system turn first; the answer comes back as output items (a
``message`` with ``output_text``, or ``function_call`` items).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from coordinator.gateway.sampling import JsonObjectFormat, TextFormat, refused
from coordinator.gateway.tools import ToolAnswer, ToolChoice
from protocol.chat import MAX_TOOLS, ChatMessage, FunctionTool, SamplingParams, ToolCall
from protocol.constraints import ANY_JSON_OBJECT, schema_problem

BUILT_IN_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "file_search",
    "computer_use_preview", "computer_use", "code_interpreter", "image_generation", "mcp",
    "local_shell", "shell", "apply_patch", "custom",
})
UNSUPPORTED: dict[str, str] = {
    "reasoning": "no Koretex model takes reasoning settings",
    "background": "background responses are not offered",
    "conversation": "conversations are not offered: continue with previous_response_id",
    "prompt": "stored prompt templates are not offered",
    "max_tool_calls": "a cap on tool calls is not supported yet",
    "top_logprobs": "log-probabilities are not offered on this API: use chat completions",
}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["input_text", "output_text", "text"]
    text: str


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[TextPart]

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        parts = value.get("content") if isinstance(value, dict) else None
        for part in parts if isinstance(parts, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("input_image", "input_file", "input_audio"):
                raise refused(f"the model does not accept {kind} parts: send text only", "input")
        return value

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionCallItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=64)
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    arguments: str = Field(max_length=100_000)


class FunctionOutputItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=64)
    output: str | list[TextPart]

    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "".join(part.text for part in self.output)


def _item_kind(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else "message"
    return kind if isinstance(kind, str) else repr(kind)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionOutputItem, Tag("function_call_output")],
    Discriminator(_item_kind),
]


class FunctionToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str | None = Field(default=None, max_length=10_000)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # calls always follow the parameters' schema: it is enforced


class NamedFunctionChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    name: str


class TextFormatJsonSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _compiles(self) -> TextFormatJsonSchema:
        problem = schema_problem(self.schema_)
        if problem is not None:
            raise refused(f"text.format: the JSON schema cannot be enforced: {problem}", "text")
        return self


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Annotated[
        TextFormat | JsonObjectFormat | TextFormatJsonSchema,
        Field(discriminator="type"),
    ] | None = None
    verbosity: Literal["medium"] | None = None  # the models' only verbosity


class ResponseRequest(BaseModel):
    """``POST /v1/responses``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[FunctionToolSpec] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedFunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool = False
    stream_options: dict[str, Any] | None = None  # include_obfuscation: nothing to pad here
    store: bool = False  # stateless unless asked
    previous_response_id: str | None = Field(default=None, max_length=64)
    truncation: Literal["disabled"] | None = None
    include: list[str] | None = Field(default=None, max_length=0)
    # Accepted as their documented meaning allows: attribution, bookkeeping and cache hints.
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    user: str | None = Field(default=None, max_length=256)
    safety_identifier: str | None = Field(default=None, max_length=256)
    prompt_cache_key: str | None = Field(default=None, max_length=256)
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _unsupported_are_named(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for name in UNSUPPORTED.keys() & value.keys():
            if value[name] is not None and value[name] is not False:
                raise refused(f"{name}: {UNSUPPORTED[name]}", name)
        for tool in value.get("tools") or ():
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and kind in BUILT_IN_TOOLS:
                raise refused(f"tools: the built-in tool {kind!r} is not offered", "tools")
        if value.get("truncation") not in (None, "disabled"):
            raise refused("truncation: only 'disabled' is offered", "truncation")
        if value.get("include"):
            raise refused(f"include: {value['include']!r} is not offered", "include")
        return {
            key: item for key, item in value.items()
            if item is not None and key not in UNSUPPORTED
        }

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ResponseRequest:
        names = [tool.name for tool in self.tools or ()]
        choice = self.tool_choice
        if isinstance(choice, NamedFunctionChoice) and choice.name not in names:
            raise refused(f"tool_choice: no tool is named {choice.name!r}", "tool_choice")
        if choice is not None and not names:
            raise refused("tool_choice: there are no tools to choose from", "tool_choice")
        if self.answer_format() is not None and self.wire_tools():
            raise refused("text.format: a JSON format together with tools is not supported yet",
                          "text")
        return self

    def turns(self) -> tuple[ChatMessage, ...]:
        """``input`` as Koretex's turns (without ``instructions``, which are not carried over
        to a response that continues this one)."""
        if isinstance(self.input, str):
            return (ChatMessage(role="user", content=self.input),)
        turns: list[ChatMessage] = []
        for item in self.input:
            if isinstance(item, MessageItem):
                role = "system" if item.role == "developer" else item.role
                turns.append(ChatMessage(role=role, content=item.text()))
            elif isinstance(item, FunctionCallItem):
                call = ToolCall(id=item.call_id, name=item.name, arguments=item.arguments)
                last = turns[-1] if turns else None
                if last is not None and last.role == "assistant" and not last.content:
                    turns[-1] = last.model_copy(update={"tool_calls": (*last.tool_calls, call)})
                else:
                    turns.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
            else:
                turns.append(
                    ChatMessage(role="tool", content=item.text(), tool_call_id=item.call_id)
                )
        return tuple(turns)

    def wire_tools(self) -> tuple[FunctionTool, ...]:
        if self.tool_choice == "none":
            return ()
        return tuple(
            FunctionTool(name=t.name, description=t.description or "",
                         parameters=t.parameters or {"type": "object", "properties": {}})
            for t in self.tools or ()
        )

    def chosen_tool(self) -> ToolChoice:
        choice = self.tool_choice
        if isinstance(choice, NamedFunctionChoice):
            return choice.name
        return choice or "auto"

    def answer_format(self) -> dict[str, Any] | None:
        format_ = self.text.format if self.text is not None else None
        if isinstance(format_, JsonObjectFormat):
            return ANY_JSON_OBJECT
        if isinstance(format_, TextFormatJsonSchema):
            return format_.schema_
        return None

    def sampling(self, max_tokens: int, json_schema: dict[str, Any] | None) -> SamplingParams:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            json_schema=json_schema,
        )


class ResponseObject(BaseModel):
    """A response as ``POST`` and ``GET /v1/responses`` return it (the spec's view of it)."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None


class ResponseDeleted(BaseModel):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool


def output_items(answer: ToolAnswer) -> list[dict[str, Any]]:
    """The answer as Responses output items: its calls, else one assistant message."""
    if answer.calls:
        return [
            {"type": "function_call", "id": item_id("fc"), "call_id": call.id,
             "name": call.name, "arguments": call.arguments, "status": "completed"}
            for call in answer.calls
        ]
    return [message_item(answer.content or "", "completed")]


def message_item(text: str, status: str, item: str | None = None) -> dict[str, Any]:
    return {
        "type": "message", "id": item or item_id("msg"), "status": status, "role": "assistant",
        "content": [output_text(text)] if status == "completed" else [],
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def answered_turns(answer: ToolAnswer) -> list[ChatMessage]:
    """The answer as turns a later response continues from."""
    if answer.calls:
        return [ChatMessage(role="assistant", content="", tool_calls=tuple(
            ToolCall(id=call.id, name=call.name, arguments=call.arguments)
            for call in answer.calls
        ))]
    return [ChatMessage(role="assistant", content=answer.content or "")]


def item_id(prefix: str) -> str:
    return f"{prefix}_" + secrets.token_hex(24)


def response_id() -> str:
    return item_id("resp")
