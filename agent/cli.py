"""``koretex``: the node operator's command line."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pydantic
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from agent import paths
from agent.bench import BenchRun, measure, summarize
from agent.catalogue import learn
from agent.cli_cloud import cloud_app
from agent.cli_config import config_app
from agent.cli_models import models_app
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
    load_settings,
)
from agent.cli_service import service_app
from agent.errors import AgentError, ConfigurationError, FatalLinkError
from agent.keys import load_or_create
from agent.models import resolve_all
from agent.plan import plan
from agent.settings import AgentSettings
from agent.status import (
    BenchResult,
    NodeStatus,
    credits,
    is_running,
    read_bench,
    read_status,
    write_bench,
    write_status,
)

app = typer.Typer(no_args_is_help=True, help="Run a Koretex node and earn for every token.")
node_app = typer.Typer(no_args_is_help=True, help="Run this machine as a node.")
app.add_typer(node_app, name="node")
app.add_typer(config_app, name="config")
app.add_typer(service_app, name="service")
app.add_typer(cloud_app, name="cloud")
app.add_typer(models_app, name="models")
console = Console(stderr=True)
out = Console()

EXIT_NOT_RUNNING = 1
EXIT_STILL_STARTING = 75  # EX_TEMPFAIL


@contextmanager
def reported_errors(on_error: Callable[[str], None] | None = None) -> Iterator[None]:
    """Turn the agent's errors into one red line and an exit code (78 when retrying is futile)."""
    try:
        yield
    except (ConfigurationError, FatalLinkError, pydantic.ValidationError, AgentError) as exc:
        if isinstance(exc, pydantic.ValidationError):
            first = exc.errors()[0]
            message = f"setting {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        else:
            message = str(exc)
        console.print(f"[red]error:[/] {message}")
        if on_error is not None:
            on_error(message)
        futile = not isinstance(exc, AgentError) or isinstance(
            exc, ConfigurationError | FatalLinkError
        )
        raise typer.Exit(EXIT_CONFIG if futile else 1) from exc


@node_app.command("run")
def node_run(
    coordinator: Coordinator = None, model: Model = None, model_id: ModelIdOption = None,
    slots: Slots = None, engine: EngineOption = None, threads: Threads = None,
    context_length: ContextLength = None, key_store: KeyStoreOption = None,
    key_file: KeyFile = None, enrollment_token: EnrollmentToken = None,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve jobs from the coordinator until stopped (SIGTERM drains gracefully)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    known: dict[str, object] = {}
    started = datetime.now(UTC)

    def failed_to_start(detail: str) -> None:
        # The daemon records its own failures; this covers those before it starts, so
        # `koretex status` (and the installer waiting on it) can say why.
        if known.get("serving"):
            return
        known.pop("serving", None)
        with contextlib.suppress(OSError):
            write_status(paths.status_file(), NodeStatus(
                pid=os.getpid(), started_at=started, updated_at=datetime.now(UTC),
                state="failed", detail=detail, **known,  # type: ignore[arg-type]
            ))

    with reported_errors(failed_to_start):
        settings = load_settings(flags(
            coordinator=coordinator, model=model, model_id=model_id, slots=slots, engine=engine,
            threads=threads, context_length=context_length, key_store=key_store,
            key_file=key_file, enrollment_token=enrollment_token,
        ))
        known["coordinator"] = settings.coordinator[0] if settings.coordinator else None
        key = load_or_create(settings.key_store, settings.key_file)
        known.update(node_id=key.node_id, key_store=key.stored_in, key_location=key.location)
        console.print(f"node [bold]{key.node_id}[/] (key in {_key_place(key.stored_in)}: "
                      f"{key.location})")
        catalogue = learn(settings.coordinator)
        served = plan(settings, resolve_all(settings.model, settings.model_id, catalogue.models))
        for item in served:
            console.print(f"serving [bold]{item.model.model_id}[/] from {item.model.path} "
                          f"({item.context_length} tokens of context)")
        from agent.daemon import serve

        known["serving"] = True
        asyncio.run(serve(settings, key, served))


def _key_place(stored_in: str) -> str:
    return "the OS keyring" if stored_in == "keyring" else "a private file"


# --- status --------------------------------------------------------------------------------------


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="Print the raw status as JSON."),
    wait: float = typer.Option(
        0.0, help="Wait up to this many seconds for the node to connect (exit 0 when it does, "
        "78 if it is refused, 75 if it is still starting).",
    ),
) -> None:
    """What the node is doing: connection, model, jobs, speed and earnings."""
    settings = _settings_or_defaults()
    stale_after = timedelta(seconds=max(10.0, 5 * settings.status_interval_s))
    deadline = time.monotonic() + wait
    while True:
        current = read_status(paths.status_file())
        running = current is not None and is_running(current, datetime.now(UTC), stale_after)
        if wait <= 0 or time.monotonic() >= deadline:
            break
        if current is not None and (
            (running and current.state == "connected") or current.state in ("refused", "failed")
        ):
            break
        time.sleep(0.5)
    if current is None:
        console.print(f"the node is not running: no status at {paths.status_file()}\n"
                      "start it with: koretex service install  (or: koretex node run)")
        raise typer.Exit(EXIT_NOT_RUNNING)
    if as_json:
        out.print_json(json.dumps({**current.model_dump(mode="json"), "running": running}))
    else:
        out.print(status_table(current, running, read_bench(paths.bench_file())))
    if current.state in ("refused", "failed"):
        raise typer.Exit(EXIT_CONFIG)
    if not running:
        raise typer.Exit(EXIT_NOT_RUNNING)
    if wait > 0 and current.state != "connected":
        raise typer.Exit(EXIT_STILL_STARTING)


def _settings_or_defaults() -> AgentSettings:
    try:
        return AgentSettings()
    except pydantic.ValidationError:
        return AgentSettings.model_construct()


STATE_STYLE = {
    "connected": "[green]● connected[/]", "loading": "[yellow]● loading the model[/]",
    "connecting": "[yellow]● connecting[/]", "waiting": "[yellow]● reconnecting[/]",
    "draining": "[yellow]● draining (stopping)[/]", "refused": "[red]● refused[/]",
    "failed": "[red]● failed[/]", "stopped": "[dim]● stopped[/]",
}


def status_table(status: NodeStatus, running: bool, bench: BenchResult | None) -> Table:
    """The status as a two-column table."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    state = STATE_STYLE.get(status.state, status.state)
    if not running and status.state not in ("refused", "failed", "stopped"):
        state = f"[red]● not running[/] (last seen {status.state})"
    table.add_row("state", state)
    if status.detail:
        table.add_row("", f"[dim]{status.detail}[/]")
    table.add_row("coordinator", status.coordinator or "?")
    if status.node_id:
        table.add_row("node", status.node_id)
        table.add_row("key", f"in {_key_place(status.key_store)}: {status.key_location}")
    table.add_row("operator", status.operator or
                  "[dim]not enrolled: pay collects in the node's own account[/]")
    if status.model:
        table.add_row("model", f"{status.model} [dim]({status.model_path})[/]")
        table.add_row("engine", status.engine)
        table.add_row("slots", f"{status.slots_in_use} of {status.slots} in use")
    table.add_row("served", f"{status.jobs_done} jobs, {status.tokens_served} tokens"
                  + (f", {status.jobs_failed} failed" if status.jobs_failed else ""))
    speed = (f"{status.measured_tok_s:.1f} tok/s measured on served jobs"
             if status.measured_tok_s else "[dim]not measured yet (no jobs served)[/]")
    if bench is not None and bench.model == status.model:
        speed += f"; bench {bench.tok_s:.1f} tok/s"
    table.add_row("speed", speed)
    table.add_row("earned", f"{credits(status.earned)} credits (as of the last connection)"
                  if status.earned is not None
                  else "[dim]not reported by the coordinator[/]")
    age = (datetime.now(UTC) - status.updated_at).total_seconds()
    table.add_row("updated", f"{age:.0f}s ago by pid {status.pid}")
    return table


# --- bench ---------------------------------------------------------------------------------------


@app.command()
def bench(
    model: Model = None, model_id: ModelIdOption = None, engine: EngineOption = None,
    threads: Threads = None, context_length: ContextLength = None,
    tokens: int = typer.Option(128, min=2, help="Tokens to generate per run."),
    runs: int = typer.Option(3, min=1, help="Runs to take the median of."),
) -> None:
    """Measure this machine's generation speed on the configured model."""
    from agent.engines.select import build_engine

    with reported_errors():
        settings = load_settings(flags(model=model, model_id=model_id, engine=engine,
                                       threads=threads, context_length=context_length))
        resolved = resolve_all(
            settings.model[:1], settings.model_id[:1], learn(settings.coordinator).models
        )[0]
        built = build_engine(settings.engine, resolved, slots=1,
                             context_length=settings.context_length, threads=settings.threads)

        async def run_all() -> list[BenchRun]:
            results: list[BenchRun] = []
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TimeElapsedColumn(), console=console,
            ) as progress:
                loading = progress.add_task(f"loading {resolved.model_id}", total=None)
                await built.load()
                progress.update(loading, total=1, completed=1)
                for index in range(runs):
                    task = progress.add_task(f"run {index + 1} of {runs}", total=tokens)
                    results.append(await measure(
                        built, tokens, index, functools.partial(progress.advance, task)
                    ))
                    progress.update(task, completed=tokens)
            await built.close()
            return results

        summary = summarize(asyncio.run(run_all()))
    write_bench(paths.bench_file(), BenchResult(
        model=resolved.model_id, sha256=resolved.sha256, engine=built.name,
        tok_s=summary.tok_s, time_to_first_token_s=summary.time_to_first_token_s,
        measured_at=datetime.now(UTC),
    ))
    table = Table(title=f"{resolved.model_id} on {built.name}", show_header=False)
    table.add_row("generation", f"[bold]{summary.tok_s:.1f} tok/s[/] (median of {runs})")
    table.add_row("first token", f"{summary.time_to_first_token_s * 1000:.0f} ms")
    table.add_row("tokens", str(summary.tokens))
    out.print(table)


def main() -> None:
    app()
