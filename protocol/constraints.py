"""What a JSON constraint means, the same on every node and on the coordinator.

A ``json_schema`` in :class:`~protocol.chat.SamplingParams` is compiled by llguidance into one
grammar, with the same options everywhere: the coordinator compiles it to refuse a schema no node
could follow (a 400 before any node is asked), each engine compiles it to mask the tokens that
would leave it. A Mac and a GPU box therefore constrain a request identically.
"""

from __future__ import annotations

from typing import Any

ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}
"""The schema of OpenAI's ``json_object`` format: some JSON object, whatever its members."""

COMPILE_OPTIONS: dict[str, Any] = {"whitespace_flexible": False}
"""Compact JSON, no whitespace between its tokens: a small model allowed free whitespace can
spend its whole budget on newlines and never close the object."""


def json_grammar(schema: dict[str, Any]) -> str:
    """The llguidance grammar of answers valid against ``schema``.

    Raises ``ValueError`` when ``schema`` is not a JSON object llguidance can read; a schema it
    reads but cannot follow shows in :func:`schema_problem`.
    """
    from llguidance import LLMatcher

    return LLMatcher.grammar_from_json_schema(schema, overrides=COMPILE_OPTIONS)  # type: ignore[arg-type]


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why no node could constrain an answer to ``schema``, or None when it compiles."""
    from llguidance import LLMatcher

    try:
        grammar = json_grammar(schema)
    except (ValueError, TypeError) as exc:
        return str(exc)
    problem = LLMatcher.validate_grammar(grammar)
    return problem or None
