"""What ``bench/gateway_vs_peers.py`` prints: added latency per server, the ratios, BENCH."""

from __future__ import annotations

import statistics
from typing import Any

import harness
from gateway_vs_peers_load import Cell

TARGET_RPS_RATIO = 10.0
TARGET_TTFT_RATIO = 0.2


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(results: dict[tuple[str, int], Cell], levels: tuple[int, ...]) -> dict[str, Any]:
    """Print the table and the targets; return the figures for the BENCH line."""
    figures: dict[str, Any] = {}
    header = (f"{'target':<9}{'conc':>5}{'req/s':>9}{'×up':>7}{'err':>5}"
              f"{'+TTFT p50':>11}{'+TTFT p99':>11}{'+tok p50':>10}{'+tok p99':>10}   (ms)")
    print(header)
    print("-" * len(header))
    for concurrency in levels:
        base = results[("upstream", concurrency)]
        for name in ("upstream", "litellm", "koretex"):
            cell = results.get((name, concurrency))
            if cell is None:
                continue
            added = [
                (pct(cell.ttft, q) - pct(base.ttft, q)) * 1000 for q in (0.5, 0.99)
            ] + [
                (pct(cell.per_token, q) - pct(base.per_token, q)) * 1000 for q in (0.5, 0.99)
            ]
            print(f"{name:<9}{concurrency:>5}{cell.rps:>9.1f}{cell.rps / base.rps:>7.2f}"
                  f"{cell.errors:>5}" + "".join(f"{v:>11.2f}" if i < 2 else f"{v:>10.3f}"
                                              for i, v in enumerate(added)))
    print()
    kore, lite = results.get(("koretex", 32)), results.get(("litellm", 32))
    if kore and lite and lite.rps:
        ratio = kore.rps / lite.rps
        figures["rps_ratio"] = ratio
        print(f"c=32 requests/s, Koretex / LiteLLM: {ratio:.1f}× (target >= 10×)")
    kore1, lite1, up1 = (results.get((n, 1)) for n in ("koretex", "litellm", "upstream"))
    if kore1 and lite1 and up1:
        k = statistics.median(kore1.ttft) - statistics.median(up1.ttft)
        li = statistics.median(lite1.ttft) - statistics.median(up1.ttft)
        print(f"c=1 added TTFT p50: Koretex {k * 1000:.2f} ms, LiteLLM {li * 1000:.2f} ms, "
              f"ratio {k / li if li else float('nan'):.3f} (target <= 0.2)")
        if li:
            figures["ttft_ratio"] = k / li
    for concurrency in levels:
        cell = results.get(("koretex", concurrency))
        if cell is not None:
            figures[f"koretex_rps_c{concurrency}"] = round(cell.rps, 1)
            figures[f"koretex_errors_c{concurrency}"] = cell.errors
            figures[f"koretex_vs_upstream_c{concurrency}"] = round(
                cell.rps / results[("upstream", concurrency)].rps, 3
            )
    return figures


def verdict(figures: dict[str, Any], levels: tuple[int, ...], quick: bool) -> None:
    """The BENCH line: the two ratios to LiteLLM, or Koretex against the upstream without it."""
    target = (f"Koretex >= {TARGET_RPS_RATIO:.0f}× LiteLLM's req/s at c=32; <= "
              f"{TARGET_TTFT_RATIO}× its added TTFT at c=1")
    extra = {k: v for k, v in figures.items() if k.startswith("koretex_")}
    if "rps_ratio" in figures and "ttft_ratio" in figures:
        harness.report(
            "gateway_vs_peers", target,
            f"{figures['rps_ratio']:.1f}× req/s, {figures['ttft_ratio']:.3f}× added TTFT",
            figures["rps_ratio"] >= TARGET_RPS_RATIO
            and figures["ttft_ratio"] <= TARGET_TTFT_RATIO,
            quick=quick, **extra,
        )
        return
    top = max(c for c in levels if f"koretex_rps_c{c}" in figures)
    harness.report(
        "gateway_vs_peers", target,
        f"LiteLLM not installed: Koretex {figures[f'koretex_rps_c{top}']:.0f} req/s at c={top} "
        f"({figures[f'koretex_vs_upstream_c{top}']:.2f}× the bare upstream)",
        None, quick=quick, **extra,
    )
