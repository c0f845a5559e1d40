"""Koretex against what users would otherwise pick, on one machine, in one run.

Run from the repository root: ``python bench/gateway_vs_peers.py`` (LiteLLM comes with the
``bench`` extra; without it only the upstream and Koretex are measured, and the targets, which
are ratios to LiteLLM, are not judged). ``--quick``: concurrency 1 and 32, 1.5 s a cell.

(a) ``upstream``: a scripted OpenAI-compatible server that streams tokens instantly.
(b) ``litellm``: LiteLLM's proxy (``litellm[proxy]``), its router pointed at the upstream.
(c) ``koretex``: the coordinator (``koretex-coordinator serve``: uvloop where installed, SQLite,
    billing, routing and API-key auth on) with a scripted node that streams instantly.

Each runs in its own process; this process is the load generator (aiohttp, on uvloop where it is
installed, raw SSE parsing so the client is never the bottleneck). For concurrency 1, 32 and 256
every target gets the same wall time; the table shows requests/s, and the latency each target
adds to the upstream's time to first token and per token (p50/p99), as ratios against (a).

Targets: at concurrency 32 Koretex serves >= 10x LiteLLM's requests/s; at concurrency 1 it adds
at most a fifth of LiteLLM's added time to first token.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import harness  # the repository on the path
from gateway_vs_peers_load import Cell, run_cell
from gateway_vs_peers_report import report, verdict
from gateway_vs_peers_targets import litellm_installed, start_koretex, start_litellm, start_upstream
from gateway_vs_peers_upstream import serve_upstream

CONCURRENCY = (1, 32, 256)
CELL_S = float(os.environ.get("BENCH_CELL_S", "6"))
WARM_S = 1.0
QUICK_CONCURRENCY = (1, 32)
QUICK_CELL_S = 1.5
QUICK_WARM_S = 0.5


async def main(only: list[str], levels: tuple[int, ...], quick: bool) -> None:
    cell_s, warm_s = (QUICK_CELL_S, QUICK_WARM_S) if quick else (CELL_S, WARM_S)
    with tempfile.TemporaryDirectory(prefix="koretex-peers-") as tmp:
        work = Path(tmp)
        upstream = await start_upstream(work)
        targets = [upstream]
        try:
            if "litellm" in only:
                targets.append(await start_litellm(work, upstream))
            if "koretex" in only:
                targets.append(await start_koretex(work))
            results: dict[tuple[str, int], Cell] = {}
            for concurrency in levels:
                for target in targets:
                    results[(target.name, concurrency)] = await run_cell(
                        target, concurrency, cell_s, warm_s
                    )
                    print(f"  {target.name} c={concurrency}: "
                          f"{results[(target.name, concurrency)].rps:.1f} req/s", file=sys.stderr)
            verdict(report(results, levels), levels, quick)
        finally:
            for target in targets:
                target.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "upstream"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--only", default="litellm,koretex",
                        help="targets besides the upstream (litellm is left out where it is not "
                        "installed)")
    parser.add_argument("--concurrency", default=None,
                        help="comma-separated concurrency levels (default: 1,32,256)")
    harness.quick_flag(parser)
    args = parser.parse_args()
    if args.mode == "upstream":
        serve_upstream(args.port)
    else:
        only = args.only.split(",")
        if "litellm" in only and not litellm_installed():
            print("LiteLLM is not installed (the bench extra): measuring the upstream and "
                  "Koretex only", file=sys.stderr)
            only.remove("litellm")
        default = QUICK_CONCURRENCY if args.quick else CONCURRENCY
        levels = tuple(int(c) for c in args.concurrency.split(",")) if args.concurrency else default
        loop = "uvloop" if harness.use_uvloop() else "asyncio (uvloop not installed)"
        print(f"load generator on {loop}", file=sys.stderr)
        asyncio.run(main(only, levels, args.quick))
