"""``koretex config``: the effective settings and where they came from; writing the file."""

from __future__ import annotations

import os

import pydantic
import typer
from rich.console import Console
from rich.table import Table

from agent import paths
from agent.cli_options import (
    EXIT_CONFIG,
    ContextLength,
    Coordinator,
    EngineOption,
    EnrollmentToken,
    KeyFile,
    KeyStoreOption,
    Model,
    ModelIdOption,
    Slots,
    Threads,
    flags,
)
from agent.config_file import (
    SECRET_SETTINGS,
    EffectiveSetting,
    effective_settings,
    update_config,
)
from agent.errors import ConfigurationError

config_app = typer.Typer(no_args_is_help=True, help="The agent's settings.")
out = Console()
console = Console(stderr=True)

SOURCE_STYLE = {"flag": "bold magenta", "env": "yellow", "file": "green", "default": "dim"}


@config_app.command("show")
def show(
    coordinator: Coordinator = None, model: Model = None, model_id: ModelIdOption = None,
    slots: Slots = None, engine: EngineOption = None, threads: Threads = None,
    context_length: ContextLength = None, key_store: KeyStoreOption = None,
    key_file: KeyFile = None, enrollment_token: EnrollmentToken = None,
    reveal: bool = typer.Option(False, help="Show secrets (the enrollment token) in full."),
) -> None:
    """Every setting's effective value and where it came from: flag, env, file or default."""
    given = flags(
        coordinator=coordinator, model=model, model_id=model_id, slots=slots, engine=engine,
        threads=threads, context_length=context_length, key_store=key_store, key_file=key_file,
        enrollment_token=enrollment_token,
    )
    path = paths.config_file()
    rows = _effective(given)
    table = Table(title=f"config file: {path}" + ("" if path.exists() else " (absent)"))
    table.add_column("setting", style="bold cyan")
    table.add_column("value")
    table.add_column("from")
    for row in rows:
        value = row.value
        if row.name in SECRET_SETTINGS and value is not None and not reveal:
            value = f"{str(value)[:8]}… (hidden: --reveal)"
        if isinstance(value, tuple):
            value = ", ".join(str(v) for v in value)
        style = SOURCE_STYLE[row.source]
        table.add_row(row.name, "[dim]unset[/]" if value is None else str(value),
                      f"[{style}]{row.source}[/]")
    out.print(table)


def _effective(given: dict[str, object]) -> list[EffectiveSetting]:
    try:
        return effective_settings(given, os.environ, paths.config_file())
    except ConfigurationError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG) from exc
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        console.print(f"[red]error:[/] setting {where}: {first['msg']}")
        raise typer.Exit(EXIT_CONFIG) from exc


@config_app.command("set")
def set_values(
    coordinator: Coordinator = None, model: Model = None, model_id: ModelIdOption = None,
    slots: Slots = None, engine: EngineOption = None, threads: Threads = None,
    context_length: ContextLength = None, key_store: KeyStoreOption = None,
    key_file: KeyFile = None, enrollment_token: EnrollmentToken = None,
) -> None:
    """Write the given settings into the config file (other settings there are kept)."""
    given = flags(
        coordinator=coordinator, model=model, model_id=model_id, slots=slots, engine=engine,
        threads=threads, context_length=context_length, key_store=key_store,
        key_file=str(key_file) if key_file is not None else None,
        enrollment_token=enrollment_token,
    )
    if "coordinator" in given:
        given["coordinator"] = list(given["coordinator"])  # type: ignore[call-overload]
    path = paths.config_file()
    try:
        update_config(path, given)
    except ConfigurationError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG) from exc
    console.print(f"wrote {path}")


@config_app.command("get")
def get(name: str = typer.Argument(help="A setting's name, as `config show` lists.")) -> None:
    """Print one setting's effective value (nothing if it is unset)."""
    rows = {row.name: row for row in _effective({})}
    row = rows.get(name.replace("-", "_"))
    if row is None:
        console.print(f"[red]error:[/] no setting {name!r} (see: koretex config show)")
        raise typer.Exit(2)
    value = row.value
    if isinstance(value, tuple):
        value = ",".join(str(v) for v in value)
    print("" if value is None else value)


@config_app.command("path")
def path() -> None:
    """Print where the config file is."""
    out.print(str(paths.config_file()), soft_wrap=True)
