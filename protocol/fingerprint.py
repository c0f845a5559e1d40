"""Model fingerprints: what the exact catalogue weights answer, greedily, to secret prompts.

The result of a reference run, stored with the model in the catalogue.

A fingerprint belongs to one weights file (its sha256): for each prompt, the greedy
continuation's token ids with their logprobs and top-k alternatives, computed by a trusted
reference run (``koretex-coordinator models add`` or ``models fingerprint``) on prompts drawn
from a fresh secret (:mod:`coordinator.probes.fingerprint_prompts`), and stored with the model in
the catalogue. Neither the prompts nor the answers are in the repository; running the reference
again rotates them.
"""

from __future__ import annotations

from pydantic import Field

from protocol.chat import ChatMessage, SamplingParams, TokenLogprob, WireModel
from protocol.ids import ModelId

FINGERPRINT_MAX_TOKENS = 48


class FingerprintAnswer(WireModel):
    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    params: SamplingParams  # greedy: temperature 0
    tokens: tuple[TokenLogprob, ...]


class Fingerprint(WireModel):
    model: ModelId
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    engine: str
    top_logprobs: int = Field(ge=1, le=20)
    answers: tuple[FingerprintAnswer, ...] = Field(min_length=1)


class FingerprintMismatch(ValueError):
    """A fingerprint does not belong to its catalogue model's weights."""
