"""Model fingerprints: what the exact catalogue weights answer, greedily, to fixed prompts.

A fingerprint belongs to one weights file (its sha256): for each prompt, the greedy
continuation's token ids with their logprobs and top-k alternatives, computed once by a trusted
run (``koretex-coordinator models fingerprint``) and kept as a JSON data file beside this module,
one per catalogue model (``fingerprints/<model>.json``). The coordinator loads them with the
catalogue; a file whose sha256 is not one of its model's catalogue weights is refused.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from protocol.catalogue import CatalogueModel
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob, WireModel
from protocol.ids import ModelId

FINGERPRINT_DIR = Path(__file__).with_name("fingerprints")

FINGERPRINT_PROMPTS: tuple[str, ...] = (
    "Write a haiku about autumn leaves.",
    "What is the difference between a list and a tuple in Python?",
    "Give me three ideas for a rainy Sunday afternoon.",
    "Explain photosynthesis to a ten-year-old.",
    "Translate 'Where is the train station?' into French.",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "What are the health benefits of drinking water?",
    "Suggest a name for a friendly robot dog.",
)
"""Ordinary-looking chat requests: a fingerprint probe must read like any consumer's."""

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
    """A fingerprint file does not belong to its catalogue model's weights."""


def fingerprint_path(model: ModelId, directory: Path = FINGERPRINT_DIR) -> Path:
    return directory / f"{model}.json"


def load_fingerprint(
    model: CatalogueModel, directory: Path = FINGERPRINT_DIR
) -> Fingerprint | None:
    """The model's fingerprint, if one was computed; raises :class:`FingerprintMismatch`."""
    path = fingerprint_path(model.id, directory)
    if not path.is_file():
        return None
    fingerprint = Fingerprint.model_validate_json(path.read_text())
    if fingerprint.model != model.id:
        raise FingerprintMismatch(f"{path.name} fingerprints {fingerprint.model}, not {model.id}")
    if model.weights and fingerprint.weights_sha256 not in {w.sha256 for w in model.weights}:
        raise FingerprintMismatch(
            f"{path.name} was computed from weights {fingerprint.weights_sha256[:12]}…, which are"
            f" not {model.id}'s catalogue weights"
        )
    return fingerprint
