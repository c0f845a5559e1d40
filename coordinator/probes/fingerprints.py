"""The fingerprint probe source: fingerprint prompts, disguised among ordinary probes, judged.

A fingerprint prompt goes out exactly as a consumer's request would: an ordinary-looking chat
message, ``max_tokens`` of a usual size, temperature 0. Greedy decoding is what makes the answer
comparable with the stored one, so temperature 0 must not single a probe out: consumers use it,
and the ordinary probe pool must draw temperature 0 for a share of its probes too (the probe
scheduler's prompt pool does; keep it so). The source answers only ``fingerprint_share`` of the
draws asked of it, so fingerprints stay a minority among probes.

The judge compares the node's claimed logprobs with the fingerprint's over the greedy path they
share (:func:`coordinator.probes.plausibility.compare` with divergence allowed at near-ties) and
records an :class:`AuthenticityVerdict` when the comparison decides.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from coordinator.catalogue import Catalogue
from coordinator.contributions import AuthenticityVerdict
from coordinator.hub.observation import JobObservation
from coordinator.probes.plausibility import Comparison, compare
from coordinator.probes.sources import ProbeDraw
from coordinator.routing import Outcome
from coordinator.settings.authenticity import AuthenticitySettings, PlausibilityTolerances
from protocol.fingerprint import Fingerprint, FingerprintAnswer
from protocol.ids import ModelId

RecordVerdict = Callable[[AuthenticityVerdict], None]


def judge_answer(
    answer: FingerprintAnswer, observation: JobObservation, tolerances: PlausibilityTolerances
) -> Comparison:
    """How the node's answer compares with the genuine greedy answer."""
    return compare(observation.logprobs, answer.tokens, tolerances, divergence_allowed=True)


def fingerprint_source(
    catalogue: Catalogue, settings: AuthenticitySettings, record: RecordVerdict | None = None
) -> FingerprintSource:
    """The source for every catalogue model that has a fingerprint, now and after the catalogue
    is reloaded (it reads the catalogue's own fingerprint map). The probe scheduler records
    what its judges decide, so the app gives no ``record``; a caller that runs the draws itself
    passes one to receive the verdicts."""
    return FingerprintSource(
        catalogue.fingerprints, settings.tolerances, record, share=settings.fingerprint_share
    )


class FingerprintSource:
    """A :class:`coordinator.probes.sources.ProbeSource` of fingerprint prompts."""

    def __init__(
        self, fingerprints: Mapping[ModelId, Fingerprint], tolerances: PlausibilityTolerances,
        record: RecordVerdict | None = None, *, share: float = 1.0,
    ) -> None:
        self._fingerprints = fingerprints
        self._tolerances = tolerances
        self._record = record
        self._share = share

    def draw(self, model: ModelId, rng: random.Random) -> ProbeDraw | None:
        if model not in self._fingerprints or rng.random() >= self._share:
            return None
        return self.exam_draw(model, rng)

    def exam_draw(self, model: ModelId, rng: random.Random) -> ProbeDraw | None:
        """A fingerprint probe of ``model`` whatever the share: the admission exam's."""
        fingerprint = self._fingerprints.get(model)
        if fingerprint is None:
            return None
        answer = rng.choice(fingerprint.answers)

        def judge(observation: JobObservation) -> bool | None:
            if observation.outcome is not Outcome.SUCCESS:
                return False
            if not observation.logprobs:
                return False  # every job asks for logprobs: an answer without them fails
            comparison = judge_answer(answer, observation, self._tolerances)
            if comparison.genuine is not None and self._record is not None:
                self._record(AuthenticityVerdict(
                    node_id=observation.node_id, at=observation.finished_at, model=model,
                    genuine=comparison.genuine,
                ))
            return comparison.genuine

        return ProbeDraw(messages=answer.messages, params=answer.params, judge=judge)
