"""Measuring honest drift, to set the plausibility tolerances (``models calibrate``).

Honest nodes differ from a verifier by floating-point drift only: thread counts, batch sizes,
context sizes, kernels. This runs the real engine on the real weights in several configurations,
has each generate (greedy and sampled) and another score the same tokens, and reports the
statistics the comparison core uses (mean drift on emitted tokens, mean drift on the shared
top-k, worst single token), with suggested tolerances at ``margin`` times the honest maximum.
Given substitute weights, it reports the same statistics for them, to show the separation.
Like the fingerprint run, the engine runs in the agent's reference command (an offline tool, see
:mod:`coordinator.reference_runs`), which answers and cross-scores; the comparison is made here.
The prompts are the probe pool's, worded like paid requests: re-scoring checks paid answers. Each
engine answers and scores every prompt in turn, so its first run starts on a fresh context and the
later ones on a context that held another job (the prompt-cache state a busy node is in).

``tests/coordinator/probes/test_calibration.py`` runs it on this machine as a test: every honest
pair inside the tolerances with margin, the Q4_0 re-quantization outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coordinator.probes.plausibility import compare
from coordinator.probes.prompts import USER_PROMPTS
from coordinator.reference_runs import run_reference
from coordinator.settings.authenticity import PlausibilityTolerances
from protocol.catalogue import CatalogueModel
from protocol.reference import CalibrationRecord, CalibrationRun, EngineSetup


@dataclass(frozen=True, slots=True)
class DriftSample:
    generator: str
    scorer: str
    temperature: float
    tokens: int
    mean_drift: float
    top_drift: float
    worst_token: float
    verdict: str


HONEST_SETUPS = (
    EngineSetup(threads=1, batch=512, context=2048),
    EngineSetup(threads=2, batch=64, context=1024),
    EngineSetup(threads=2, batch=512, context=4096),
)


async def measure(
    model: CatalogueModel, weights: Path | None, *, substitutes: tuple[Path, ...] = (),
    prompts: tuple[str, ...] = USER_PROMPTS[:4], max_tokens: int = 48,
    setups: tuple[EngineSetup, ...] = HONEST_SETUPS, seed: int = 1,
    tolerances: PlausibilityTolerances | None = None,
    temperatures: tuple[float, ...] = (0.0, 1.0),
) -> list[DriftSample]:
    """Drift of every generator setup (and substitute) against every other scorer setup;
    ``weights`` ``None`` is the models directory's copy of ``model``."""
    tolerances = tolerances or PlausibilityTolerances()
    record = await run_reference(CalibrationRun(
        model=model, weights=None if weights is None else str(weights),
        substitutes=tuple(map(str, substitutes)), setups=setups, prompts=prompts,
        temperatures=temperatures, max_tokens=max_tokens, seed=seed,
    ), CalibrationRecord)
    samples: list[DriftSample] = []
    for answer in record.answers:
        for scoring in answer.scorings:
            result = compare(answer.claimed, scoring.tokens, tolerances)
            samples.append(DriftSample(
                generator=answer.generator, scorer=scoring.scorer,
                temperature=answer.temperature, tokens=len(result.tokens),
                mean_drift=result.mean_drift, top_drift=result.top_drift,
                worst_token=max((t.drift for t in result.tokens), default=0.0),
                verdict=result.verdict,
            ))
    return samples


def suggest(samples: list[DriftSample], margin: float = 2.0) -> dict[str, float]:
    """Tolerances at ``margin`` times the worst honest figure measured."""
    honest = [s for s in samples if not s.generator.startswith("substitute")]
    return {
        "mean_drift": round(margin * max(s.mean_drift for s in honest), 3),
        "top_drift": round(margin * max(s.top_drift for s in honest), 3),
        "token_drift": round(margin * max(s.worst_token for s in honest), 3),
    }
