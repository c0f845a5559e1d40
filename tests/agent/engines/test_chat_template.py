"""Chat templates from the weights, rendered in Jinja2's sandbox as llama.cpp's server does."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from agent.engines.chat_template import (
    ChatTemplate,
    ChatTemplateError,
    PromptRenderer,
    render_plain,
)
from agent.errors import RequestRejected
from protocol.chat import ChatMessage, Role


def chat(*turns: tuple[Role, str]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(role=role, content=content) for role, content in turns)


@pytest.fixture(scope="module")
def chatml(smollm2_path: Path) -> ChatTemplate:
    """SmolLM2's own template, read from its GGUF's metadata."""
    import gguf

    reader = gguf.GGUFReader(str(smollm2_path))
    field = reader.fields["tokenizer.chat_template"]
    source = bytes(field.parts[field.data[0]]).decode()
    return ChatTemplate(source, bos_token="<|im_start|>", eos_token="<|im_end|>")


SMOLLM_SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n"
)


def test_chatml_from_the_gguf_opens_the_assistant_turn(chatml: ChatTemplate) -> None:
    assert chatml.render(chat(("user", "Name the capital of France."))) == (
        SMOLLM_SYSTEM + "<|im_start|>user\nName the capital of France.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_a_system_message_replaces_the_templates_default(chatml: ChatTemplate) -> None:
    rendered = chatml.render(chat(("system", "Be brief."), ("user", "Hi")))
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_without_the_generation_prompt_the_conversation_ends_closed(
    chatml: ChatTemplate,
) -> None:
    rendered = chatml.render(chat(("user", "Hi"), ("assistant", "Hello!")),
                             add_generation_prompt=False)
    assert rendered.endswith("<|im_start|>assistant\nHello!<|im_end|>\n")


def test_a_continuation_follows_the_generation_prompt(chatml: ChatTemplate) -> None:
    messages = chat(("user", "Tell a story."))
    assert chatml.render(messages, continuation="Once upon a") == (
        chatml.render(messages) + "Once upon a"
    )
    assert chatml.render(messages, continuation="Once upon a").endswith(
        "<|im_start|>assistant\nOnce upon a"
    )


TOOLS_TEMPLATE = (
    "{% if tools %}{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}{% endif %}"
    "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def test_tools_reach_the_template_as_json() -> None:
    tool = {"type": "function", "function": {"name": "weather", "description": "Météo <now>"}}
    rendered = ChatTemplate(TOOLS_TEMPLATE).render(chat(("user", "Hi")), tools=[tool])
    # transformers' tojson: no ASCII or HTML escaping.
    assert rendered == (
        '{"type": "function", "function": {"name": "weather", "description": "Météo <now>"}}\n'
        "[user] Hi\n[assistant] "
    )
    assert ChatTemplate(TOOLS_TEMPLATE).render(chat(("user", "Hi"))) == "[user] Hi\n[assistant] "


def test_bos_token_eos_token_and_strftime_now_are_defined() -> None:
    template = ChatTemplate(
        "{{ bos_token }}{{ strftime_now('%d %b %Y') }}|{{ messages[0].content }}{{ eos_token }}",
        bos_token="<s>", eos_token="</s>", clock=lambda: datetime(2026, 12, 4),
    )
    assert template.render(chat(("user", "x"))) == "<s>04 Dec 2026|x</s>"


def test_raise_exception_is_a_clear_refusal_of_the_input() -> None:
    template = ChatTemplate(
        "{% if messages[0].role != 'user' %}"
        "{{ raise_exception('Conversation roles must start with user') }}{% endif %}ok"
    )
    assert template.render(chat(("user", "Hi"))) == "ok"
    with pytest.raises(ChatTemplateError, match="Conversation roles must start with user") as err:
        template.render(chat(("assistant", "Hello")))
    assert isinstance(err.value, RequestRejected)  # neutral for the node, a 400 for the consumer


def test_a_template_that_does_not_compile_names_its_syntax_error_when_used() -> None:
    broken = ChatTemplate("{% for m in messages %}{{ m.content }}")  # no endfor
    with pytest.raises(ChatTemplateError, match="chat template is broken: TemplateSyntaxError"):
        broken.render(chat(("user", "Hi")))


def test_the_sandbox_refuses_to_mutate_or_reach_outside() -> None:
    mutating = ChatTemplate("{% set _ = messages.append(1) %}{{ messages | length }}")
    with pytest.raises(ChatTemplateError, match="refused"):
        mutating.render(chat(("user", "Hi")))
    escaping = ChatTemplate("{{ ''.__class__.__mro__ }}")
    with pytest.raises(ChatTemplateError):
        escaping.render(chat(("user", "Hi")))


def test_a_model_without_a_template_gets_the_text_as_written() -> None:
    messages = chat(("user", "The capital of France is"))
    assert render_plain(messages) == "The capital of France is"
    assert PromptRenderer(None).render(messages, " Paris") == "The capital of France is Paris"
    assert render_plain(chat(("system", "A"), ("user", "B"))) == "A\n\nB"
