"""A model's own chat template, rendered the way llama.cpp's server and transformers render it.

The template is the Jinja2 source the weights carry (GGUF ``tokenizer.chat_template``, an MLX
tokenizer's ``chat_template``), run in an immutable sandbox with the names those templates
expect: ``messages``, ``tools``, ``add_generation_prompt``, ``bos_token``, ``eos_token``,
``raise_exception``, ``strftime_now`` and the ``tojson`` filter. Prompts are rendered here rather
than by the engine so that a partial answer can be continued: the continuation is appended after
the rendered generation prompt.

A model without a template is a completion model: its prompt is the messages' text as written.

Consumer text must never become a special token: a message saying ``<|im_end|><|im_start|>system``
would otherwise end its own turn and open one the template never wrote. :func:`segment_prompt`
renders with each message's content replaced by a placeholder, so the rendered prompt splits into
the template's own text (tokenized with special tokens parsed) and the consumer's (tokenized
as plain text).
"""

from __future__ import annotations

import json
import re
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
class PromptSegment:
    """A run of a rendered prompt: the template's own text (``trusted``: its markers are special
    tokens) or a consumer's (tokenized as plain text, whatever markers it spells)."""

    text: str
    trusted: bool


Render = Callable[[Sequence[ChatMessage], str], str]
"""A renderer: messages and continuation to prompt text."""

# Private-use code points: no template writes them, so they mark exactly where content went.
_PLACEHOLDER = re.compile("\ue000koretex-content-([0-9]+)\ue001")


def _placeholder(index: int) -> str:
    return f"\ue000koretex-content-{index}\ue001"


def segment_prompt(
    render: Render, messages: Sequence[ChatMessage], continuation: str = ""
) -> tuple[PromptSegment, ...]:
    """The prompt ``render`` writes for ``messages``, split into template and consumer text.

    Rendered once with placeholders in place of the contents; if putting the contents back gives
    exactly the prompt rendered from the real messages, the placeholders mark the consumer's text.
    A template that inspects or rewrites its contents (so the placeholder render differs) is
    split instead by finding each content, in order, in the real prompt. The continuation is
    consumer text after the generation prompt. Empty runs are dropped.
    """
    contents = [m.content for m in messages]
    stand_ins = [m.model_copy(update={"content": _placeholder(i)}) for i, m in enumerate(messages)]
    real = render(messages, "")
    segments = _split_on_placeholders(render(stand_ins, ""), contents, real)
    if segments is None:
        segments = _split_by_search(real, contents)
    segments.append(PromptSegment(continuation, trusted=False))
    return tuple(s for s in segments if s.text)


def _split_on_placeholders(
    marked: str, contents: Sequence[str], real: str
) -> list[PromptSegment] | None:
    segments: list[PromptSegment] = []
    cursor = 0
    for match in _PLACEHOLDER.finditer(marked):
        index = int(match.group(1))
        if index >= len(contents):
            return None
        segments.append(PromptSegment(marked[cursor:match.start()], trusted=True))
        segments.append(PromptSegment(contents[index], trusted=False))
        cursor = match.end()
    segments.append(PromptSegment(marked[cursor:], trusted=True))
    if "".join(s.text for s in segments) != real:
        return None
    return segments


def _split_by_search(real: str, contents: Sequence[str]) -> list[PromptSegment]:
    segments: list[PromptSegment] = []
    cursor = 0
    for content in contents:
        start = real.find(content, cursor) if content else -1
        if start < 0:
            continue  # the template dropped or rewrote it: nothing of it to mark
        segments.append(PromptSegment(real[cursor:start], trusted=True))
        segments.append(PromptSegment(content, trusted=False))
        cursor = start + len(content)
    segments.append(PromptSegment(real[cursor:], trusted=True))
    return segments


@dataclass(frozen=True, slots=True)
class PromptRenderer:
    """How an engine turns a job's messages into text: the model's template, else plain text."""

    template: ChatTemplate | None

    def render(self, messages: Sequence[ChatMessage], continuation: str = "") -> str:
        if self.template is None:
            return render_plain(messages, continuation)
        return self.template.render(messages, continuation=continuation)

    def segments(
        self, messages: Sequence[ChatMessage], continuation: str = "", *, raw: bool = False
    ) -> tuple[PromptSegment, ...]:
        """The prompt split into template text and consumer text (:func:`segment_prompt`);
        a completion model's prompt, and a ``raw`` one, is all consumer text."""
        if self.template is None or raw:
            return tuple(
                s for s in [PromptSegment(render_plain(messages, continuation), trusted=False)]
                if s.text
            )
        return segment_prompt(self.render, messages, continuation)
