"""Gemma's turn format, rendered exactly."""

from __future__ import annotations

from agent.engines.chat_format import ARCHITECTURE_FORMATS, FORMATS, render_gemma
from protocol.chat import ChatMessage, Role


def chat(*turns: tuple[Role, str]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(role=role, content=content) for role, content in turns)


def test_a_single_user_turn_opens_the_model_turn() -> None:
    assert render_gemma(chat(("user", "Hi")), "") == (
        "<start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_system_text_is_folded_into_the_first_user_turn() -> None:
    messages = chat(("system", "Be brief."), ("user", "Hi"), ("user", "Still there?"))
    assert render_gemma(messages, "") == (
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>user\nStill there?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_several_system_messages_are_joined_wherever_they_stand() -> None:
    messages = chat(("system", "Be brief."), ("user", "Hi"), ("system", "Use French."))
    assert render_gemma(messages, "") == (
        "<start_of_turn>user\nBe brief.\n\nUse French.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_system_text_waits_for_a_user_turn_after_an_opening_assistant_turn() -> None:
    messages = chat(("system", "Be brief."), ("assistant", "Hello."), ("user", "Hi"))
    assert render_gemma(messages, "") == (
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_system_text_alone_becomes_a_user_turn() -> None:
    assert render_gemma(chat(("system", "Be brief.")), "") == (
        "<start_of_turn>user\nBe brief.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_assistant_turns_are_model_turns() -> None:
    messages = chat(("user", "Hi"), ("assistant", "Hello!"), ("user", "Name a colour."))
    assert render_gemma(messages, "") == (
        "<start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_a_continuation_is_left_open_in_the_model_turn() -> None:
    rendered = render_gemma(chat(("user", "Tell a story.")), "Once upon a")
    assert rendered == (
        "<start_of_turn>user\nTell a story.<end_of_turn>\n"
        "<start_of_turn>model\nOnce upon a"
    )
    assert rendered == render_gemma(chat(("user", "Tell a story.")), "") + "Once upon a"


def test_the_gemma_format_ends_turns_on_end_of_turn() -> None:
    gemma = FORMATS["gemma"]
    assert gemma.name == "gemma"
    assert gemma.end_of_turn == "<end_of_turn>"
    assert gemma.render(chat(("user", "Hi")), "") == render_gemma(chat(("user", "Hi")), "")
    assert all(name in FORMATS for name in ARCHITECTURE_FORMATS.values())
