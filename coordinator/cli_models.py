"""``koretex-coordinator models``: the catalogue is data, and this is how operators change it.

``add`` reads a GGUF file or MLX directory (local, or ``hf:OWNER/REPO/FILE[@REVISION]`` from
Hugging Face), records its identity and download source, runs it once to build the fingerprint
probes check nodes against, and stores it with its prices. Running coordinators pick the change
up within ``catalogue_refresh_s``; agents learn it when they next start. ``fingerprint`` and
``calibrate`` are the reference runs behind the probes.

Reading and running the weights is the agent's reference command's work
(:mod:`coordinator.reference_runs`): these admin commands run on a machine the platform trusts,
with the agent installed, never in the serving coordinator.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from coordinator.catalogue import Price, PricedModel
from coordinator.cli_sources import WeightsSource, fetch_source
from coordinator.probes.calibration import measure, suggest
from coordinator.probes.fingerprint_prompts import fingerprint_prompts
from coordinator.probes.fingerprint_run import compute_fingerprint
from coordinator.reference_runs import ReferenceRunFailed, describe_weights
from coordinator.settings import CoordinatorSettings
from coordinator.store.catalogue import (
    CatalogueConflict,
    add_model,
    load_catalogue,
    remove_model,
    set_price,
)
from coordinator.store.database import Database
from protocol.catalogue import CatalogueModel, WeightsFile
from protocol.fingerprint import FingerprintMismatch
from protocol.ids import ModelId

T = TypeVar("T")

ModelOption = Annotated[str, typer.Option(help="The catalogue model id.")]
WeightsOption = Annotated[
    Path | None, typer.Option(help="The weights file [default: the models directory].")
]
SubstituteOption = Annotated[
    list[Path] | None, typer.Option(help="Substitute weights to measure against the tolerances.")
]

models_app = typer.Typer(no_args_is_help=True, help="The catalogue: models, prices, fingerprints.")
console = Console(stderr=True)
out = Console()


def _with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = await Database.open(CoordinatorSettings().database_url)
        try:
            return await work(database)
        finally:
            await database.close()

    try:
        return asyncio.run(run())
    except CatalogueConflict as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


def _reference(run: Coroutine[Any, Any, T]) -> T:
    """A reference run's result; its failure printed (what is missing or wrong) and exit 1."""
    try:
        return asyncio.run(run)
    except (ReferenceRunFailed, FingerprintMismatch) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


def _priced(model_id: str) -> PricedModel:
    async def find(database: Database) -> PricedModel | None:
        return next((m for m in await load_catalogue(database) if m.id == model_id), None)

    priced = _with_database(find)
    if priced is None:
        raise typer.BadParameter(f"{model_id!r} is not a catalogue model")
    return priced


@models_app.command("add")
def add(
    source: Annotated[str, typer.Argument(
        help="A GGUF file, an MLX directory, or hf:OWNER/REPO/FILE[@REVISION]."
    )],
    model_id: Annotated[str, typer.Option("--id", help="The id consumers ask for.")],
    price_in: Annotated[int, typer.Option(min=0, help="Credits per million prompt tokens.")],
    price_out: Annotated[int, typer.Option(min=0, help="Credits per million output tokens.")],
    name: Annotated[str | None, typer.Option(help="A display name [default: the weights'].")]
    = None,
    fingerprint: Annotated[bool, typer.Option(
        help="Run the weights once for the fingerprint probes check nodes against."
    )] = True,
    replace: Annotated[bool, typer.Option(help="Replace a model of the same id.")] = False,
    threads: Annotated[int, typer.Option(help="Engine threads (0: automatic).")] = 0,
) -> None:
    """Add a model to the catalogue (served as soon as a node offers it)."""
    try:
        located: WeightsSource = fetch_source(source)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    info = _reference(describe_weights(located.path))
    sha256 = info.sha256
    model = CatalogueModel(
        id=ModelId(model_id), name=name or f"{info.name} ({info.quantization or info.engine})",
        chat_template=info.chat_template, context_length=info.context_length,
        parameters=info.parameters, architecture=info.architecture,
        weights=(WeightsFile(
            sha256=sha256, filename=located.name, repo=located.repo,
            revision=located.revision, engine=info.engine,
            size_bytes=info.size_bytes, quantization=info.quantization,
        ),),
    )
    reference = None
    if fingerprint and info.engine == "llama.cpp":
        console.print(f"running {located.path.name} for its fingerprint…")
        reference = _reference(
            compute_fingerprint(model, located.path, secret_prompts(model.id), threads=threads)
        )
    elif fingerprint:
        console.print("[yellow]MLX weights are not fingerprinted: probes measure speed only[/]")
    price = Price(price_in, price_out)
    _with_database(lambda database: add_model(
        database, model, price, reference, datetime.now(UTC), replace=replace,
    ))
    kind = "chat" if info.chat_template else "completions only (no chat template)"
    console.print(
        f"added [bold]{model_id}[/]: {info.architecture} {info.parameters} "
        f"{info.quantization or ''}, {info.context_length} tokens of context, {kind}, "
        f"sha256 {sha256[:12]}…, {price_in}/{price_out} credits per 1M tokens"
        + ("" if reference is None else f", fingerprint of {len(reference.answers)} prompts")
    )


@models_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json")) -> None:
    """The catalogue as stored."""
    models = _with_database(load_catalogue)
    if as_json:
        print(json.dumps([m.published().model_dump(mode="json") for m in models], indent=1))
        return
    table = Table(title="catalogue")
    for column in ("id", "name", "parameters", "quant", "context", "chat", "price in/out",
                   "fingerprint", "sha256", "source"):
        table.add_column(column)
    for priced in models:
        model = priced.model
        weights = model.weights[0] if model.weights else None
        table.add_row(
            model.id, model.name, model.parameters,
            (weights.quantization if weights else None) or "?", str(model.context_length),
            "yes" if model.chat_template else "no", f"{priced.price.input_per_1m}/"
            f"{priced.price.output_per_1m}", "yes" if priced.fingerprint else "no",
            weights.sha256[:12] if weights else "?",
            f"{weights.repo}/{weights.filename}" if weights and weights.repo else "-",
        )
    out.print(table)


@models_app.command("remove")
def remove(
    model_id: Annotated[str, typer.Argument(help="The catalogue model id.")],
    force: Annotated[bool, typer.Option(help="Remove it even while nodes serve it.")] = False,
    coordinator: Annotated[str | None, typer.Option(
        help="The running coordinator to ask whether nodes serve it [default: settings]."
    )] = None,
) -> None:
    """Remove a model; refused while nodes serve it unless --force."""
    if not force:
        settings = CoordinatorSettings()
        base = coordinator or f"http://{settings.host}:{settings.port}"
        serving = _nodes_serving(base, model_id)
        if serving is None:
            console.print(f"[red]error:[/] could not ask {base} whether nodes serve {model_id}; "
                          "pass --coordinator URL, or --force")
            raise typer.Exit(1)
        if serving:
            console.print(f"[red]error:[/] {serving} node(s) serve {model_id} now; --force "
                          "removes it anyway (they are refused when they reconnect)")
            raise typer.Exit(1)
    _with_database(lambda database: remove_model(database, model_id))
    console.print(f"removed {model_id}")


def _nodes_serving(base: str, model_id: str) -> int | None:
    try:
        with urllib.request.urlopen(
            base.rstrip("/") + "/v1/network/catalogue", timeout=10
        ) as response:
            listing = json.loads(response.read(8 << 20))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    entry = next((m for m in listing.get("data", ()) if m.get("id") == model_id), None)
    return 0 if entry is None else int(entry.get("nodes", 0))


@models_app.command("set-price")
def set_price_command(
    model_id: Annotated[str, typer.Argument(help="The catalogue model id.")],
    price_in: Annotated[int, typer.Option(min=0, help="Credits per million prompt tokens.")],
    price_out: Annotated[int, typer.Option(min=0, help="Credits per million output tokens.")],
) -> None:
    """Change a model's prices (requests priced from the next catalogue reload on)."""
    _with_database(lambda database: set_price(
        database, model_id, Price(price_in, price_out), datetime.now(UTC)
    ))
    console.print(f"{model_id} now costs {price_in}/{price_out} credits per 1M tokens")


def secret_prompts(model_id: str) -> tuple[str, ...]:
    """Fingerprint prompts from a secret drawn now and kept nowhere: only the prompts and their
    answers are stored, in the database."""
    return fingerprint_prompts(secrets.token_bytes(32), model_id, 0)


@models_app.command("fingerprint")
def fingerprint_command(
    model: ModelOption, weights: WeightsOption = None,
    threads: int = typer.Option(0, help="Engine threads (0: automatic)."),
) -> None:
    """Compute the model's fingerprint from its exact weights on freshly drawn secret prompts
    and store it: run it for a model without one, and again to rotate the prompts."""
    priced = _priced(model)  # without --weights: the models directory's copy, as a node's
    result = _reference(compute_fingerprint(
        priced.model, weights, secret_prompts(priced.id), threads=threads,
    ))
    _with_database(lambda database: add_model(
        database, priced.model, priced.price, result, datetime.now(UTC), replace=True,
    ))
    tokens = sum(len(a.tokens) for a in result.answers)
    console.print(f"stored {model}'s fingerprint: {len(result.answers)} prompts, {tokens} tokens")


@models_app.command("calibrate")
def calibrate(
    model: ModelOption,
    weights: WeightsOption = None,
    substitute: SubstituteOption = None,
    margin: float = typer.Option(2.0, help="Suggested tolerance = margin x worst honest figure."),
) -> None:
    """Measure honest drift across thread counts, batch and context sizes; print tolerances."""
    priced = _priced(model)
    samples = _reference(
        measure(priced.model, weights, substitutes=tuple(substitute or ()))
    )
    print(f"{'generator':34} {'scorer':34} {'temp':>4} {'n':>3} {'mean':>6} {'top-k':>6}"
          f" {'worst':>6} verdict")
    for s in samples:
        print(f"{s.generator:34} {s.scorer:34} {s.temperature:4.1f} {s.tokens:3d}"
              f" {s.mean_drift:6.3f} {s.top_drift:6.3f} {s.worst_token:6.3f} {s.verdict}")
    for label in sorted({s.generator.startswith("substitute") for s in samples}):
        group = [s for s in samples if s.generator.startswith("substitute") == label]
        kind = "substitutes" if label else "honest"
        print(f"{kind}: mean drift median {statistics.median(s.mean_drift for s in group):.3f}"
              f" max {max(s.mean_drift for s in group):.3f} min"
              f" {min(s.mean_drift for s in group):.3f}; top-k drift max"
              f" {max(s.top_drift for s in group):.3f} min {min(s.top_drift for s in group):.3f}")
    print("suggested tolerances:", suggest(samples, margin))
