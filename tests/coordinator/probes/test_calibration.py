"""The calibration as a test: on this machine's CPU, honest drift stays well inside the
tolerances and a substitute falls outside them.

The real Gemma 3 270M (Q4_K_M) in llama.cpp answers paid-like prompts, greedy and sampled at
temperature 1, in several honest setups (1 or 2 threads, batch 64 or 512, n_ctx 1k-4k, fresh and
used contexts); every other honest setup re-scores each answer, as a verifier would. The same
model re-quantized to Q4_0 answers under the same claim and is re-scored the same way.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from coordinator.probes.calibration import DriftSample, measure
from coordinator.probes.prompts import USER_PROMPTS
from coordinator.settings.authenticity import PlausibilityTolerances
from protocol import catalogue

pytestmark = pytest.mark.slow

MARGIN = 1.5
"""The worst honest figure times this must still be inside its tolerance: room for other CPUs."""


def summary(kind: str, group: list[DriftSample]) -> str:
    means = [s.mean_drift for s in group]
    tops = [s.top_drift for s in group]
    return (f"{kind} ({len(group)} pairs): mean drift median {statistics.median(means):.3f}"
            f" range {min(means):.3f}-{max(means):.3f}; top-k drift median"
            f" {statistics.median(tops):.3f} range {min(tops):.3f}-{max(tops):.3f};"
            f" worst token {max(s.worst_token for s in group):.3f}")


async def test_honest_drift_stays_inside_the_tolerances_and_a_requantization_falls_outside(
    gemma_path: Path, requantized_path: Path
) -> None:
    tolerances = PlausibilityTolerances()
    model = catalogue.by_id("gemma-3-270m")
    assert model is not None
    samples = await measure(
        model, gemma_path, substitutes=(requantized_path,), prompts=USER_PROMPTS[:2],
        max_tokens=32, tolerances=tolerances,
    )
    honest = [s for s in samples if not s.generator.startswith("substitute")]
    substitute = [s for s in samples if s.generator.startswith("substitute")]
    print("\n" + summary("honest", honest) + "\n" + summary("Q4_0 substitute", substitute))
    for temperature in (0.0, 1.0):
        print(summary(f"honest at temperature {temperature}",
                      [s for s in honest if s.temperature == temperature]))

    assert {s.temperature for s in honest} == {0.0, 1.0}
    assert all(s.tokens >= tolerances.min_tokens for s in samples)
    assert [s for s in honest if s.verdict != "genuine"] == []
    assert max(s.mean_drift for s in honest) * MARGIN <= tolerances.mean_drift
    assert max(s.top_drift for s in honest) * MARGIN <= tolerances.top_drift
    assert [s for s in substitute if s.verdict != "substituted"] == []
    assert all(
        s.mean_drift > tolerances.mean_drift or s.top_drift > tolerances.top_drift
        for s in substitute
    )
