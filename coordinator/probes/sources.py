"""Where probe workloads come from.

The scheduler asks its sources, in turn, for the next probe of a model; a source answers with the
messages and sampling parameters to send (in exactly the shape of a consumer job) and, if it knows
what a right answer looks like, a judge for the attempt. The realistic prompt pool is one source;
model fingerprints are another, disguised among the pool's prompts.

Fingerprint probes are greedy (temperature 0), so temperature 0 must not mark a probe: every
source draws it for a share of its probes, as consumers use it too
(:mod:`coordinator.probes.fingerprints`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from coordinator.hub.observation import JobObservation
from protocol.chat import ChatMessage, SamplingParams
from protocol.ids import ModelId

Judge = Callable[[JobObservation], bool | None]
"""True when a completed probe answered as the claimed model would, False when it did not, None
when the answer cannot tell (too short, a near-tie): the probe then passes with no verdict."""


@dataclass(frozen=True, slots=True)
class ProbeDraw:
    messages: tuple[ChatMessage, ...]
    params: SamplingParams
    judge: Judge | None = None  # None: a plain health check, passed by completing


class ProbeSource(Protocol):
    def draw(self, model: ModelId, rng: random.Random) -> ProbeDraw | None:
        """A probe for ``model``, or None when this source has nothing for it this time."""
        ...
