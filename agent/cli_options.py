"""The settings flags shared by ``koretex node run``, ``bench`` and ``config``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.settings import AgentSettings

Coordinator = Annotated[
    list[str] | None,
    typer.Option("--coordinator", "-c", help="Coordinator URL (repeat for fallbacks)."),
]
Model = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", help="Weights path or catalogue name (repeat to serve several)."),
]
ModelIdOption = Annotated[
    list[str] | None,
    typer.Option(help="Catalogue id of each --model's weights, in order (default: by hash)."),
]
Slots = Annotated[int | None, typer.Option(help="Jobs served at once.")]
EngineOption = Annotated[str | None, typer.Option(help="auto, llama.cpp or mlx.")]
Threads = Annotated[int | None, typer.Option(help="Engine threads per slot (0: automatic).")]
ContextLength = Annotated[int | None, typer.Option(help="Context window in tokens.")]
KeyStoreOption = Annotated[str | None, typer.Option(help="auto, keyring or file.")]
KeyFile = Annotated[
    Path | None, typer.Option(help="Where the node key lives without a keyring.")
]
EnrollmentToken = Annotated[
    str | None, typer.Option(help="One-time token that binds this node to your account.")
]

EXIT_CONFIG = 78
"""EX_CONFIG: the coordinator refused the node or its settings are wrong; retrying won't help."""


def flags(**values: object) -> dict[str, object]:
    """The flags given on the command line, as settings (lists become tuples)."""
    given: dict[str, object] = {}
    for name, value in values.items():
        if value is None or (isinstance(value, list) and not value):
            continue
        given[name] = tuple(value) if isinstance(value, list) else value
    return given


def load_settings(given: dict[str, object]) -> AgentSettings:
    return AgentSettings(**given)  # type: ignore[arg-type]
