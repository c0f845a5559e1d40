"""The coordinator's view of the catalogue: shared model identities plus their prices.

Amounts are integers of the smallest credit unit, the micro-credit (10^-6 credit). A price of N
credits per million tokens is therefore exactly N micro-credits per token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from coordinator.probes.fingerprint_data import Fingerprint, load_fingerprint
from protocol.catalogue import CATALOGUE, CatalogueModel
from protocol.ids import ModelId

MICRO = 1_000_000
"""Micro-credits in one credit."""


@dataclass(frozen=True, slots=True)
class Price:
    input_per_1m: int  # credits per million prompt tokens
    output_per_1m: int  # credits per million completion tokens

    def cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The cost in micro-credits."""
        return prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m


DEFAULT_PRICES: dict[str, Price] = {
    "gemma-3-270m": Price(input_per_1m=10, output_per_1m=20),
    "smollm2-135m-instruct": Price(input_per_1m=10, output_per_1m=20),
}


@dataclass(frozen=True, slots=True)
class PricedModel:
    model: CatalogueModel
    price: Price
    fingerprint: Fingerprint | None = None  # the weights' greedy answers to fixed prompts

    @property
    def id(self) -> ModelId:
        return self.model.id


class Catalogue:
    def __init__(self, models: dict[ModelId, PricedModel]) -> None:
        self._models = models

    @classmethod
    def default(cls) -> Catalogue:
        return cls({
            m.id: PricedModel(m, DEFAULT_PRICES.get(m.id, Price(100, 200)), load_fingerprint(m))
            for m in CATALOGUE
        })

    def get(self, model_id: str) -> PricedModel | None:
        return self._models.get(ModelId(model_id))

    def __iter__(self) -> Iterator[PricedModel]:
        return iter(self._models.values())

    def accepts_weights(self, model_id: str, sha256: str | None) -> bool:
        """Whether a node may serve ``model_id`` with weights of this hash."""
        priced = self.get(model_id)
        if priced is None:
            return False
        known = {w.sha256 for w in priced.model.weights}
        return sha256 is None or not known or sha256 in known
