"""Turning chat messages into the prompt text a model was trained on.

Prompts are rendered here rather than by the engine so that a partial answer can be continued:
the assistant's turn is opened and left open with the text already delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protocol.chat import ChatMessage


@dataclass(frozen=True, slots=True)
class ChatFormat:
    name: str
    render: Callable[[Sequence[ChatMessage], str], str]
    end_of_turn: str  # the marker that closes the model's turn: generation stops on it


def render_gemma(messages: Sequence[ChatMessage], continuation: str) -> str:
    """Gemma's turn format. Gemma has no system role: system text opens the first user turn."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    parts: list[str] = []
    pending_system = system
    for message in messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        content = message.content
        if role == "user" and pending_system:
            content = f"{pending_system}\n\n{content}"
            pending_system = ""
        parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    if pending_system:
        parts.append(f"<start_of_turn>user\n{pending_system}<end_of_turn>\n")
    parts.append(f"<start_of_turn>model\n{continuation}")
    return "".join(parts)


FORMATS: dict[str, ChatFormat] = {
    "gemma": ChatFormat("gemma", render_gemma, "<end_of_turn>"),
}

ARCHITECTURE_FORMATS = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma"}
"""Fallback by GGUF ``general.architecture`` for weights not in the catalogue."""
