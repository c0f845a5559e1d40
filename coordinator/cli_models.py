"""``koretex-coordinator models``: fingerprint catalogue models and calibrate tolerances."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from coordinator.probes.fingerprint_data import FINGERPRINT_DIR, fingerprint_path
from protocol import catalogue
from protocol.catalogue import CatalogueModel

ModelOption = Annotated[str, typer.Option(help="The catalogue model id.")]
WeightsOption = Annotated[
    Path | None, typer.Option(help="The weights file [default: the models directory].")
]
OutOption = Annotated[
    Path | None, typer.Option(help=f"Where to write it [default: {FINGERPRINT_DIR}/<model>.json].")
]
SubstituteOption = Annotated[
    list[Path] | None, typer.Option(help="Substitute weights to measure against the tolerances.")
]

models_app = typer.Typer(no_args_is_help=True, help="Catalogue models: fingerprints, calibration.")
console = Console(stderr=True)


def _catalogue_model(model: str) -> CatalogueModel:
    entry = catalogue.by_id(model)
    if entry is None:
        raise typer.BadParameter(f"{model!r} is not a catalogue model")
    return entry


def _weights(entry: CatalogueModel, weights: Path | None) -> Path:
    if weights is not None:
        return weights
    from agent.models import resolve  # the weights a node would serve, from its models directory

    return resolve(entry.id).path


@models_app.command("fingerprint")
def fingerprint(
    model: ModelOption,
    weights: WeightsOption = None,
    out: OutOption = None,
    threads: int = typer.Option(0, help="Engine threads (0: automatic)."),
) -> None:
    """Compute the model's fingerprint from its exact catalogue weights and write it."""
    from coordinator.probes.fingerprint_run import compute_fingerprint

    entry = _catalogue_model(model)
    result = asyncio.run(compute_fingerprint(entry, _weights(entry, weights), threads=threads))
    target = out or fingerprint_path(entry.id)
    target.write_text(result.model_dump_json(indent=1) + "\n")
    tokens = sum(len(a.tokens) for a in result.answers)
    console.print(f"wrote {target}: {len(result.answers)} prompts, {tokens} tokens")


@models_app.command("calibrate")
def calibrate(
    model: ModelOption,
    weights: WeightsOption = None,
    substitute: SubstituteOption = None,
    margin: float = typer.Option(2.0, help="Suggested tolerance = margin x worst honest figure."),
) -> None:
    """Measure honest drift across thread counts, batch and context sizes; print tolerances."""
    from coordinator.probes.calibration import measure, suggest

    entry = _catalogue_model(model)
    samples = asyncio.run(
        measure(entry, _weights(entry, weights), substitutes=tuple(substitute or ()))
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
