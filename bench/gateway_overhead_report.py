"""What ``bench/gateway_overhead.py`` prints: a table of its lanes, the targets, the BENCH line."""

from __future__ import annotations

import statistics

import harness
from gateway_overhead_lanes import CONTEXT_LENGTH, MODEL, THREADS, Cell, Lane, Sample
from rich.console import Console
from rich.table import Table

TARGET_THROUGHPUT_RATIO = 0.95
TARGET_ADDED_TTFT_MS = 5.0
NOISY_MACHINE = 0.10  # share of the cores other programs may use before results are suspect


def peak_generating(samples: list[Sample]) -> int:
    """The most requests that were between their first and last token at the same moment."""
    edges = sorted(
        [(s.first_token, 1) for s in samples] + [(s.ended, -1) for s in samples],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def report(results: list[tuple[Cell, tuple[Lane, ...]]], max_tokens: int) -> None:
    table = Table(title="Network path overhead: gateway + agent link vs. the engine in-process")
    for header in (
        "conc.", "path", "req.", "tokens", "TTFT p50 ms", "TTFT p90 ms", "req. tok/s p50",
        "agg. tok/s", "tput b/a", "+TTFT ms", "CPU ms/tok engine proc", "CPU ms/tok gw+client",
    ):
        table.add_column(header, justify="left" if header == "path" else "right")
    verdicts: list[str] = []
    notes: list[str] = []
    for cell, lanes in results:
        a, b = lanes[0], lanes[1]
        ratio = b.aggregate_tok_s / a.aggregate_tok_s
        added = b.ttft_ms(0.5) - a.ttft_ms(0.5)  # every lane asks the same prompts
        for lane in lanes:
            through = lane is not a
            gateway_cpu = f"{lane.gateway_cpu_s / lane.tokens * 1000:.2f}" if through else "—"
            table.add_row(
                str(cell.concurrency), lane.name, str(len(lane.samples)), str(lane.tokens),
                f"{lane.ttft_ms(0.5):.1f}", f"{lane.ttft_ms(0.9):.1f}",
                f"{statistics.median(s.tok_s for s in lane.samples):.1f}",
                f"{lane.aggregate_tok_s:.1f}",
                f"{lane.aggregate_tok_s / a.aggregate_tok_s:.3f}" if through else "",
                f"{lane.ttft_ms(0.5) - a.ttft_ms(0.5):+.1f}" if through else "",
                f"{lane.engine_cpu_s / lane.tokens * 1000:.2f}", gateway_cpu,
                end_section=lane is lanes[-1],
            )
        met = "met" if ratio >= TARGET_THROUGHPUT_RATIO else "MISSED"
        verdicts.append(
            f"throughput at concurrency {cell.concurrency}: gateway/direct = {ratio:.3f} "
            f"(target >= {TARGET_THROUGHPUT_RATIO}) {met}"
        )
        if cell.concurrency == 1:
            met = "met" if added <= TARGET_ADDED_TTFT_MS else "MISSED"
            verdicts.append(
                f"added TTFT at concurrency 1: {added:+.1f} ms (target <= "
                f"{TARGET_ADDED_TTFT_MS:.0f} ms) {met}"
            )
        texts = {s.prompt: s.text for s in a.samples}
        differing = sum(
            1 for lane in lanes[1:] for s in lane.samples if texts.get(s.prompt, s.text) != s.text
        )
        notes.append(
            f"concurrency {cell.concurrency}: {a.wall_s:.1f} s / {b.wall_s:.1f} s of generation "
            f"measured; peak requests generating at once {peak_generating(a.samples)} / "
            f"{peak_generating(b.samples)}; other programs kept {a.others_busy:.0%} / "
            f"{b.others_busy:.0%} of the cores busy; network answers differing from direct: "
            f"{differing}"
        )
    console = Console(width=160)
    console.print(table)
    console.print(
        f"Engine: {MODEL}, context {CONTEXT_LENGTH}, {THREADS} thread(s) per slot, slots = "
        f"concurrency; temperature 0, max_tokens {max_tokens}; rounds alternate A B B A after "
        "a warm-up round per path. TTFT = request start to first token; +TTFT = gateway TTFT "
        "p50 - direct TTFT p50; req. tok/s = completion tokens / request time; agg. = all "
        "completion tokens / wall time of the rounds."
    )
    for note in notes:
        console.print(f"  {note} (direct / gateway)")
    console.print("Targets:")
    for verdict in verdicts:
        console.print(f"  {verdict}")
    busiest = max(lane.others_busy for _, lanes in results for lane in lanes)
    if busiest > NOISY_MACHINE:
        console.print(
            f"[yellow]warning:[/] other programs kept up to {busiest:.0%} of the cores busy, so "
            "the wall-clock figures (TTFT, tok/s, ratios) are mostly their noise; the CPU "
            "ms/tok columns hold up better. Rerun on a quiet machine to judge the targets."
        )


def verdict(results: list[tuple[Cell, tuple[Lane, ...]]], quick: bool) -> None:
    """The BENCH line: the worst throughput ratio of any door and the TTFT added at
    concurrency 1 (the worst door's)."""
    worst = min(
        lane.aggregate_tok_s / lanes[0].aggregate_tok_s
        for _, lanes in results for lane in lanes[1:]
    )
    added = max(
        lane.ttft_ms(0.5) - lanes[0].ttft_ms(0.5)
        for cell, lanes in results if cell.concurrency == 1 for lane in lanes[1:]
    )
    harness.report(
        "gateway_overhead",
        f"gateway/direct tok/s >= {TARGET_THROUGHPUT_RATIO}; +TTFT <= "
        f"{TARGET_ADDED_TTFT_MS:.0f} ms at c=1",
        f"{worst:.3f}, {added:+.1f} ms",
        worst >= TARGET_THROUGHPUT_RATIO and added <= TARGET_ADDED_TTFT_MS, quick=quick,
    )
