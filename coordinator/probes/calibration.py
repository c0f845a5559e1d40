"""Measuring honest drift, to set the plausibility tolerances (``models calibrate``).

Honest nodes differ from a verifier by floating-point drift only: thread counts, batch sizes,
context sizes, kernels. This runs the real engine on the real weights in several configurations,
has each generate (greedy and sampled) and another score the same tokens, and reports the
statistics the comparison core uses (mean drift on emitted tokens, mean drift on the shared
top-k, worst single token), with suggested tolerances at ``margin`` times the honest maximum.
Given substitute weights, it reports the same statistics for them, to show the separation.
Like the fingerprint run, it uses the node's engine in-process (an offline tool). The prompts are
the probe pool's, worded like paid requests: re-scoring checks paid answers. Each engine answers
and scores every prompt in turn, so its first run starts on a fresh context and the later ones on a
context that held another job (the prompt-cache state a busy node is in).

``tests/coordinator/probes/test_calibration.py`` runs it on this machine as a test: every honest
pair inside the tolerances with margin, the Q4_0 re-quantization outside.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path

from coordinator.probes.plausibility import compare
from coordinator.probes.prompts import USER_PROMPTS
from coordinator.settings.authenticity import PlausibilityTolerances
from protocol.catalogue import CatalogueModel
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob


@dataclass(frozen=True, slots=True)
class EngineSetup:
    threads: int
    batch: int
    context: int

    def __str__(self) -> str:
        return f"threads={self.threads} batch={self.batch} n_ctx={self.context}"


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
    EngineSetup(1, 512, 2048), EngineSetup(2, 64, 1024), EngineSetup(2, 512, 4096),
)


async def measure(
    model: CatalogueModel, weights: Path, *, substitutes: tuple[Path, ...] = (),
    prompts: tuple[str, ...] = USER_PROMPTS[:4], max_tokens: int = 48,
    setups: tuple[EngineSetup, ...] = HONEST_SETUPS, seed: int = 1,
    tolerances: PlausibilityTolerances | None = None,
    temperatures: tuple[float, ...] = (0.0, 1.0),
) -> list[DriftSample]:
    """Drift of every generator setup (and substitute) against every other scorer setup."""
    from agent.engines.base import GeneratedToken, GenerationRequest, ModelInfo, ScoringRequest
    from agent.engines.llama_cpp import LlamaCppEngine

    tolerances = tolerances or PlausibilityTolerances()
    rng = random.Random(seed)

    def engine(path: Path, setup: EngineSetup) -> LlamaCppEngine:
        return LlamaCppEngine(
            ModelInfo(str(path), "", setup.context), n_threads=setup.threads,
            n_batch=setup.batch,
        )

    engines = {str(setup): engine(weights, setup) for setup in setups}
    generators = dict(engines)
    for path in substitutes:
        generators[f"substitute {path.name}"] = engine(path, setups[0])
    samples: list[DriftSample] = []
    try:
        for (name, generator), temperature, prompt in itertools.product(
            generators.items(), temperatures, prompts
        ):
            messages = (ChatMessage(role="user", content=prompt),)
            params = SamplingParams(
                max_tokens=max_tokens, temperature=temperature, seed=rng.getrandbits(31)
            )
            claimed: list[TokenLogprob] = [
                event.logprob async for event in generator.generate(
                    GenerationRequest(messages, params, top_logprobs=5)
                ) if isinstance(event, GeneratedToken) and event.logprob is not None
            ]
            ids = tuple(lp.token_id for lp in claimed if lp.token_id is not None)
            for scorer_name, scorer in engines.items():
                if scorer_name == name:
                    continue
                reference = await scorer.score(
                    ScoringRequest(messages=messages, text="", token_ids=ids, top_logprobs=5)
                )
                result = compare(claimed, reference, tolerances)
                samples.append(DriftSample(
                    generator=name, scorer=scorer_name, temperature=temperature,
                    tokens=len(result.tokens), mean_drift=result.mean_drift,
                    top_drift=result.top_drift,
                    worst_token=max((t.drift for t in result.tokens), default=0.0),
                    verdict=result.verdict,
                ))
    finally:
        for each in generators.values():
            await each.close()
    return samples


def suggest(samples: list[DriftSample], margin: float = 2.0) -> dict[str, float]:
    """Tolerances at ``margin`` times the worst honest figure measured."""
    honest = [s for s in samples if not s.generator.startswith("substitute")]
    return {
        "mean_drift": round(margin * max(s.mean_drift for s in honest), 3),
        "top_drift": round(margin * max(s.top_drift for s in honest), 3),
        "token_drift": round(margin * max(s.worst_token for s in honest), 3),
    }
