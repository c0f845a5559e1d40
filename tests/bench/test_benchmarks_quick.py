"""Every benchmark's quick mode runs for real and ends with a figure, so none can rot unnoticed.

Each benchmark is run as a newcomer runs it (``python bench/<name>.py --quick``, its own process,
from the repository root, no path set up beforehand) and must exit 0 with a ``BENCH`` line that
names its target and a measured figure. Targets are not asserted: quick sizes make the figures
indicative, and a loaded machine misses them; the full runs (``make bench``) judge them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = (
    "authenticity", "constrained", "engines", "gateway_overhead", "gateway_vs_peers",
    "hostile_node", "integrity", "ledger", "models", "node_swarm", "points", "routing",
    "scale",
)
NEEDS_SERVICES = {"ledger": ("KORETEX_TEST_POSTGRES_URL",),
                  "scale": ("KORETEX_TEST_POSTGRES_URL", "KORETEX_TEST_REDIS_URL")}
TIMEOUT_S = 240.0 * float(os.environ.get("KORETEX_TEST_TIMEOUT_FACTOR", "1"))


def bench_line(output: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.startswith("BENCH ")]
    assert lines, f"no BENCH line in the output:\n{output[-3000:]}"
    assert output.rstrip().splitlines()[-1] == lines[-1], "the BENCH line is not the last line"
    parsed: dict[str, Any] = json.loads(lines[-1].removeprefix("BENCH "))
    return parsed


def run_quick(name: str) -> tuple[dict[str, Any], str, float]:
    # A clean environment for the path: the benchmark must find the repository by itself.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, f"bench/{name}.py", "--quick"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    seconds = time.monotonic() - began
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"bench/{name}.py --quick exited {done.returncode}:\n" + (
        output[-4000:]
    )
    return bench_line(done.stdout), output, seconds


@pytest.mark.parametrize("name", BENCHMARKS)
def test_quick_mode_prints_its_figure(name: str) -> None:
    missing = [var for var in NEEDS_SERVICES.get(name, ()) if not os.environ.get(var)]
    assert not missing, (
        f"bench/{name}.py needs {', '.join(missing)}: "
        'set -a; eval "$(scripts/test_services.sh start)"; set +a'
    )
    line, output, seconds = run_quick(name)
    assert line["name"] == name
    assert line["quick"] is True
    assert str(line["target"]).strip()
    assert str(line["figure"]).strip()
    assert line["met"] in (True, False, None)
    if name == "ledger":  # PostgreSQL is up, so it is the database judged
        assert line["met"] is not None, line
    if name == "gateway_vs_peers":  # with or without LiteLLM, Koretex itself is measured
        assert line["koretex_rps_c32"] > 0, output[-3000:]
        assert line["koretex_errors_c1"] == 0 and line["koretex_errors_c32"] == 0, line
    if name == "integrity":  # with nothing to stop them, the simulated substitutes are paid
        assert line["control_share"] > 0, line
        assert 0 <= line["share"] <= 1, line
    if name == "node_swarm":  # every simulated node registered
        count = str(line["figure"]).split(" ", 1)[0]
        assert count == "50/50", line
    print(f"{name}: {seconds:.1f} s, {line['figure']}")


def test_run_all_collects_one_table() -> None:
    """run_all runs the benchmarks it is given and ends with the table of their figures."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "bench/run_all.py", "--quick", "--only", "routing,points"],
        cwd=REPO, env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout[done.stdout.rindex("Benchmarks"):]
    for name in ("routing", "points"):
        row = next(line for line in table.splitlines() if f" {name} " in line)
        assert "µs" in row or " s wall" in row, row
        assert "met" in row or "MISSED" in row, row
