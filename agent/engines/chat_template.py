"""A model's own chat template, rendered the way llama.cpp's server and transformers render it.

The template is the Jinja2 source the weights carry (GGUF ``tokenizer.chat_template``, an MLX
tokenizer's ``chat_template``), run in an immutable sandbox with the names those templates
expect: ``messages``, ``tools``, ``add_generation_prompt``, ``bos_token``, ``eos_token``,
``raise_exception``, ``strftime_now`` and the ``tojson`` filter. Prompts are rendered here rather
than by the engine so that a partial answer can be continued: the continuation is appended after
the rendered generation prompt.

A model without a template is a completion model: its prompt is the messages' text as written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agent.errors import RequestRejected
from protocol.chat import ChatMessage

Clock = Callable[[], datetime]


class ChatTemplateError(RequestRejected):
    """The model's template refused the conversation or could not be rendered: the input's fault
    as far as the node is concerned (neutral), reported to the consumer as a 400."""


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None,
    separators: tuple[str, str] | None = None, sort_keys: bool = False,
) -> str:
    # transformers' tojson: no HTML escaping (templates write JSON into prompts, not pages).
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
        sort_keys=sort_keys,
    )


def _environment(clock: Clock) -> ImmutableSandboxedEnvironment:
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = lambda fmt: clock().strftime(fmt)
    return environment


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """A chat template compiled once; :meth:`render` turns a conversation into prompt text."""

    source: str
    bos_token: str = ""
    eos_token: str = ""
    clock: Clock = field(default=datetime.now, compare=False)
    _compiled: jinja2.Template | None = field(init=False, default=None, compare=False)
    _broken: str | None = field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = _environment(self.clock).from_string(self.source)
        except jinja2.TemplateError as exc:
            # Kept for render time: the model still loads, each chat request says why it fails.
            object.__setattr__(self, "_broken", f"{type(exc).__name__}: {exc}")
        else:
            object.__setattr__(self, "_compiled", compiled)

    def render(
        self, messages: Sequence[ChatMessage], *, continuation: str = "",
        add_generation_prompt: bool = True, tools: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        """The prompt for ``messages``, with ``continuation`` after the generation prompt.

        Raises :class:`ChatTemplateError` naming the cause when the template cannot render.
        """
        if self._compiled is None:
            raise ChatTemplateError(f"the model's chat template is broken: {self._broken}")
        try:
            text = self._compiled.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                tools=list(tools) if tools else None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(
                f"the model's chat template refused the messages: {exc}"
            ) from exc
        except Exception as exc:  # a template's own bug (a type error in its expressions)
            raise ChatTemplateError(
                f"the model's chat template failed: {type(exc).__name__}: {exc}"
            ) from exc
        return text + continuation


def render_plain(messages: Sequence[ChatMessage], continuation: str = "") -> str:
    """A completion model's prompt: the messages' text as written, then the continuation."""
    return "\n\n".join(m.content for m in messages) + continuation


@dataclass(frozen=True, slots=True)
class PromptRenderer:
    """How an engine turns a job's messages into text: the model's template, else plain text."""

    template: ChatTemplate | None

    def render(self, messages: Sequence[ChatMessage], continuation: str = "") -> str:
        if self.template is None:
            return render_plain(messages, continuation)
        return self.template.render(messages, continuation=continuation)
