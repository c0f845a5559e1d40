"""``koretex models``: the coordinator's catalogue as this machine sees it, and pulling weights."""

from __future__ import annotations

import json

import psutil
import typer
from rich.console import Console
from rich.table import Table

from agent import paths
from agent.catalogue import KnownCatalogue, learn
from agent.cli_options import Coordinator, flags, load_settings
from agent.errors import AgentError
from agent.fit import MIB
from protocol.catalogue import CatalogueModel

models_app = typer.Typer(no_args_is_help=True, help="The network's models on this machine.")
console = Console(stderr=True)
out = Console()


def _catalogue(coordinator: list[str] | None) -> KnownCatalogue:
    try:
        settings = load_settings(flags(coordinator=coordinator))
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    known = learn(settings.coordinator)
    if known.source in ("cache", "seed"):
        console.print(f"[yellow]no coordinator answered: the {known.source} catalogue[/]")
    return known


def _on_disk(model: CatalogueModel) -> str | None:
    for weights in model.weights:
        path = paths.models_dir() / weights.filename
        if path.exists():
            return str(path)
    return None


@models_app.command("list")
def models_list(
    coordinator: Coordinator = None,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per model."),
) -> None:
    """Every model the network serves: whether its weights are here and fit this machine."""
    known = _catalogue(coordinator)
    available = psutil.virtual_memory().available
    if as_json:
        for model in known.models:
            size = next((w.size_bytes for w in model.weights if w.size_bytes), None)
            out.print_json(json.dumps({
                **model.model_dump(mode="json"), "here": _on_disk(model),
                "fits": None if size is None else size < available,
            }))
        return
    prices = known.prices()
    table = Table(title=f"models ({known.source})")
    for column in ("id", "parameters", "quant", "context", "chat", "price in/out", "size",
                   "here", "fits", "source"):
        table.add_column(column)
    for model in known.models:
        weights = model.weights[0] if model.weights else None
        size = weights.size_bytes if weights and weights.size_bytes else None
        price = prices.get(model.id)
        table.add_row(
            model.id, model.parameters, (weights.quantization if weights else None) or "?",
            str(model.context_length), "yes" if model.chat_template else "no (completions)",
            f"{price[0]}/{price[1]}" if price else "?",
            f"{size // MIB} MiB" if size else "?",
            _on_disk(model) or "no",
            "?" if size is None else ("yes" if size < available else "[red]no[/]"),
            (f"{weights.repo}/{weights.filename}" if weights and weights.repo
             else "[dim]no source: bring the weights[/]"),
        )
    out.print(table)


@models_app.command("pull")
def models_pull(
    name: str = typer.Argument(..., help="Catalogue model id, e.g. gemma-3-270m."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    coordinator: Coordinator = None,
) -> None:
    """Download a catalogue model's weights once, checked against the catalogue's sha256."""
    from agent.models import pull

    known = _catalogue(coordinator)
    try:
        path = pull(name, progress=not quiet, known=known.models)
    except AgentError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[bold]{name}[/] is at {path}; serve it with: koretex node run --model {name}")
