"""``koretex``: the node operator's command line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer
from rich.console import Console

from agent.errors import AgentError
from agent.keys import load_or_create
from agent.models import resolve
from agent.settings import AgentSettings

app = typer.Typer(no_args_is_help=True, help="Run a Koretex node and earn for every token.")
node_app = typer.Typer(no_args_is_help=True, help="Run this machine as a node.")
app.add_typer(node_app, name="node")
console = Console(stderr=True)


def _settings(**flags: object) -> AgentSettings:
    return AgentSettings(**{k: v for k, v in flags.items() if v is not None})


@node_app.command("run")
def node_run(
    coordinator: list[str] = typer.Option(
        None, "--coordinator", "-c", help="Coordinator URL (repeat for fallbacks)."
    ),
    model: str = typer.Option(None, "--model", "-m", help="Weights path or catalogue name."),
    model_id: str = typer.Option(None, help="Catalogue id of the weights (default: by hash)."),
    slots: int = typer.Option(None, help="Jobs served at once."),
    engine: str = typer.Option(None, help="auto, llama.cpp or mlx."),
    threads: int = typer.Option(None, help="Engine threads per slot (0: automatic)."),
    context_length: int = typer.Option(None, help="Context window in tokens."),
    key_store: str = typer.Option(None, help="auto, keyring or file."),
    key_file: Path = typer.Option(None, help="Where the node key lives without a keyring."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve jobs from the coordinator until stopped (SIGTERM drains gracefully)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        settings = _settings(
            coordinator=tuple(coordinator) if coordinator else None, model=model,
            model_id=model_id, slots=slots, engine=engine, threads=threads,
            context_length=context_length, key_store=key_store, key_file=key_file,
        )
        if settings.model is None:
            raise typer.BadParameter("no model: pass --model PATH_OR_NAME", param_hint="--model")
        key = load_or_create(settings.key_store, settings.key_file)
        console.print(f"node [bold]{key.node_id}[/] (key in {key.stored_in}: {key.location})")
        resolved = resolve(settings.model, settings.model_id)
        console.print(f"serving [bold]{resolved.model_id}[/] from {resolved.path}")
        from agent.daemon import serve

        asyncio.run(serve(settings, key, resolved))
    except AgentError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


def main() -> None:
    app()
