"""A conversation with tools, written in turns every chat template renders (pure).

The coordinator constrains an answer to tools to one JSON shape (``{"tool_calls": [...]}`` or
``{"response": "..."}``, see coordinator/gateway/tools.py); this writes the rest of the
conversation in the same words, as llama.cpp's server does for a template without a tool format
of its own: the tools and that shape are described in the system turn, an assistant's earlier
calls become that JSON, and each tool result becomes a user turn carrying a ``tool_response``
(consecutive results share one turn, so templates that insist on alternating turns accept it).
Everything it writes is message content, which prompts tokenize as plain text: a tool's
description or a result cannot forge a turn marker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from protocol.chat import ChatMessage, FunctionTool

INSTRUCTIONS = (
    "You can call these tools (JSON Schema for each one's arguments):\n{tools}\n\n"
    'To call tools, answer with only a JSON object {{"tool_calls": [{{"name": <tool name>, '
    '"arguments": <arguments object>}}]}}. To answer without a tool, answer with only '
    '{{"response": <your answer>}}. A tool\'s result comes back as a "tool_response".'
)


def uses_tools(messages: Sequence[ChatMessage], tools: Sequence[FunctionTool]) -> bool:
    return bool(tools) or any(m.role == "tool" or m.tool_calls for m in messages)


def tool_turns(
    messages: Sequence[ChatMessage], tools: Sequence[FunctionTool]
) -> tuple[ChatMessage, ...]:
    """``messages`` with the tools described and every tool turn written as plain turns."""
    if not uses_tools(messages, tools):
        return tuple(messages)
    turns: list[ChatMessage] = []
    if tools:
        described = INSTRUCTIONS.format(tools=json.dumps(
            [{"name": t.name, "description": t.description, "parameters": t.parameters}
             for t in tools], ensure_ascii=False,
        ))
        first = messages[0] if messages else None
        if first is not None and first.role == "system":
            turns.append(ChatMessage(role="system", content=f"{first.content}\n\n{described}"))
            messages = messages[1:]
        else:
            turns.append(ChatMessage(role="system", content=described))
    results: list[dict[str, str]] = []
    for message in messages:
        if message.role == "tool":
            results.append({"tool_call_id": message.tool_call_id or "", "content": message.content})
            continue
        if results:
            turns.append(_results_turn(results))
            results = []
        if message.tool_calls:
            calls = [
                {"name": call.name, "arguments": _arguments(call.arguments)}
                for call in message.tool_calls
            ]
            turns.append(ChatMessage(role="assistant", content=json.dumps({"tool_calls": calls})))
        else:
            turns.append(ChatMessage(role=message.role, content=message.content))
    if results:
        turns.append(_results_turn(results))
    return tuple(turns)


def _results_turn(results: list[dict[str, str]]) -> ChatMessage:
    body = [{"tool_response": result} for result in results]
    return ChatMessage(role="user", content=json.dumps(body[0] if len(body) == 1 else body))


def _arguments(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # as the consumer wrote it
