"""Tool calling as every door shares it (pure): the answer's shape, and reading it back.

A request with tools is answered in one JSON shape, enforced by constrained decoding on every
node (llama.cpp's server does the same for models without a native tool format): either
``{"tool_calls": [{"name": …, "arguments": {…}}, …]}`` or ``{"response": "…"}``. The schema
allows only the tools offered, each with its own parameters' schema, so a call always parses
and matches its function; ``required`` and a named function leave out the ``response`` branch.
Nodes and cloud relays write the tools and earlier calls into the prompt (protocol/tool_turns.py).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from protocol.chat import FunctionTool
from protocol.messages import FinishReason

ToolChoice = Literal["none", "auto", "required"] | str
"""``none``, ``auto``, ``required``, or the name of the one function to call."""


def answer_schema_for_tools(
    tools: tuple[FunctionTool, ...], choice: ToolChoice, *, parallel: bool
) -> dict[str, Any] | None:
    """The JSON schema of an answer to a request offering ``tools`` (None: free text)."""
    if not tools or choice == "none":
        return None
    offered = [tool for tool in tools if choice in ("auto", "required") or tool.name == choice]
    call = {"anyOf": [_call_schema(tool) for tool in offered]} if len(offered) > 1 else (
        _call_schema(offered[0])
    )
    calls: dict[str, Any] = {"type": "array", "items": call, "minItems": 1}
    if not parallel or choice not in ("auto", "required"):
        calls["maxItems"] = 1
    with_calls = _object({"tool_calls": calls})
    if choice != "auto":
        return with_calls
    return {"anyOf": [with_calls, _object({"response": {"type": "string"}})]}


def _call_schema(tool: FunctionTool) -> dict[str, Any]:
    return _object({"name": {"const": tool.name}, "arguments": tool.parameters})


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object", "properties": properties, "required": list(properties),
        "additionalProperties": False,
    }


@dataclass(frozen=True, slots=True)
class CallMade:
    """A function call read from an answer, with the id the consumer will answer it by."""

    id: str
    name: str
    arguments: str  # the arguments object as JSON text, as OpenAI sends it


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    """What an answer to a request with tools says: text, or calls."""

    content: str | None
    calls: tuple[CallMade, ...]
    finish_reason: Literal["stop", "length", "tool_calls"]


def read_tool_answer(text: str, finish_reason: FinishReason) -> ToolAnswer:
    """The answer ``text`` in the shape :func:`answer_schema_for_tools` enforces.

    An answer cut short by max_tokens (or any text out of that shape) is returned as text, as
    OpenAI returns an answer cut mid-call.
    """
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("tool_calls"), list):
        calls = tuple(
            CallMade(new_call_id(), str(call["name"]), json.dumps(call.get("arguments", {})))
            for call in decoded["tool_calls"] if isinstance(call, dict) and "name" in call
        )
        if calls:
            return ToolAnswer(None, calls, "tool_calls")
    if isinstance(decoded, dict) and isinstance(decoded.get("response"), str):
        return ToolAnswer(decoded["response"], (), "stop")
    return ToolAnswer(text, (), finish_reason)


def read_answer(text: str, finish_reason: FinishReason, *, with_tools: bool) -> ToolAnswer:
    """An answer as text or calls: read in the tools' shape when tools were offered."""
    if with_tools:
        return read_tool_answer(text, finish_reason)
    return ToolAnswer(text, (), finish_reason)


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(12)
