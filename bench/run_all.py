"""Every benchmark, one after another, ending with one table: target, figure, met or not.

Run from the repository root: ``python bench/run_all.py [--quick] [--only NAME,NAME]``
(``make bench`` runs it). It starts the throwaway PostgreSQL and Redis the ledger and scale
benchmarks need (``scripts/test_services.sh start``, left running as ``make test`` leaves them),
then runs each benchmark as its own process, its output passed through as it comes, and reads
the ``BENCH {...}`` line each one ends with (``bench/harness.py``). ``--quick`` passes ``--quick``
on: sizes shrunk to seconds a benchmark, figures only indicative.

Exit status: 1 when a benchmark failed to run or printed no BENCH line, 0 otherwise; a missed
target is a finding on this machine, not a failure (``--strict`` makes it one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import harness

BENCHMARKS = (
    "authenticity", "constrained", "engines", "gateway_overhead", "gateway_vs_peers",
    "hostile_node", "integrity", "ledger", "models", "node_swarm", "points", "routing",
    "scale",
)
NEEDS_SERVICES = frozenset({"ledger", "scale"})
SERVICES = harness.ROOT / "scripts" / "test_services.sh"
TIMEOUT_S = 3600.0
QUICK_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    line: dict[str, object] | None
    failure: str | None  # why no figure: exit status, timeout, missing service

    @property
    def met(self) -> bool | None:
        return None if self.line is None else self.line.get("met")  # type: ignore[return-value]


def start_services() -> tuple[dict[str, str], str | None]:
    """The environment naming the test servers, and why not when they could not start."""
    try:
        started = subprocess.run(
            ["sh", str(SERVICES), "start"], capture_output=True, text=True, timeout=120,
            cwd=harness.ROOT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {}, f"{SERVICES.name} start: {exc}"
    if started.returncode != 0:
        return {}, f"{SERVICES.name} start failed: {started.stderr.strip()[-300:]}"
    env = dict(
        line.split("=", 1) for line in started.stdout.splitlines() if line.startswith("KORETEX_")
    )
    return env, None


def run(name: str, quick: bool, env: dict[str, str], timeout: float) -> Outcome:
    """One benchmark as its own process: its output passed through and kept for the BENCH line."""
    command = [sys.executable, str(harness.ROOT / "bench" / f"{name}.py")]
    if quick:
        command.append("--quick")
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    began = time.monotonic()
    lines: list[str] = []
    process = subprocess.Popen(
        command, cwd=harness.ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    stdout = process.stdout
    assert stdout is not None

    def relay() -> None:
        for line in stdout:
            lines.append(line)
            sys.stdout.write(line)
            sys.stdout.flush()

    relaying = threading.Thread(target=relay, daemon=True)
    relaying.start()
    try:
        status = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        relaying.join(5)
        return Outcome(name, time.monotonic() - began, None, f"timed out after {timeout:.0f} s")
    relaying.join(30)  # a child it started may hold the pipe open: do not wait for it forever
    seconds = time.monotonic() - began
    line = harness.parse("".join(lines))
    if status != 0:
        return Outcome(name, seconds, line, f"exited with status {status}")
    if line is None:
        return Outcome(name, seconds, None, "printed no BENCH line")
    return Outcome(name, seconds, line, None)


def verdict_text(outcome: Outcome) -> str:
    if outcome.failure is not None:
        return "FAILED"
    return {True: "met", False: "MISSED"}.get(outcome.met, "not judged")  # type: ignore[arg-type]


def print_table(outcomes: list[Outcome], quick: bool) -> None:
    title = "Benchmarks" + (" (quick: sizes shrunk, figures indicative)" if quick else "")
    rows = [
        (
            o.name,
            str(o.line.get("target", "")) if o.line else "",
            o.failure if o.failure is not None else str(o.line.get("figure", "")) if o.line
            else "",
            verdict_text(o),
            f"{o.seconds:.0f}",
        )
        for o in outcomes
    ]
    headers = ("benchmark", "target", "figure", "met", "s")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}")
        print(" | ".join(headers))
        for row in rows:
            print(" | ".join(row))
        return
    table = Table(title=title)
    for header in headers:
        table.add_column(header, justify="right" if header == "s" else "left", overflow="fold")
    styles = {"met": "green", "MISSED": "yellow", "FAILED": "bold red"}
    for row in rows:
        table.add_row(*row, style=styles.get(row[3]))
    Console(width=max(120, shutil.get_terminal_size((160, 24)).columns)).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.quick_flag(parser)
    parser.add_argument("--only", help="comma-separated benchmarks (default: all)")
    parser.add_argument("--strict", action="store_true", help="a missed target fails the run")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    env: dict[str, str] = {}
    services_missing: str | None = None
    if NEEDS_SERVICES & set(names):
        env, services_missing = start_services()
        if services_missing:
            print(f"warning: {services_missing}", file=sys.stderr)
    timeout = QUICK_TIMEOUT_S if args.quick else TIMEOUT_S
    outcomes = [run(name, args.quick, env, timeout) for name in names]
    print_table(outcomes, args.quick)
    if services_missing:
        print(f"PostgreSQL/Redis not started ({services_missing}): ledger measured SQLite only, "
              "scale could not run")
    failed = [o.name for o in outcomes if o.failure is not None]
    missed = [o.name for o in outcomes if o.failure is None and o.met is False]
    if failed:
        print(f"failed to run: {', '.join(failed)}")
    return 1 if failed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
