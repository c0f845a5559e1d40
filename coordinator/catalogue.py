"""The coordinator's view of the catalogue: model identities with their prices and fingerprints.

The catalogue is data, kept in the database (:mod:`coordinator.store.catalogue`) and reloaded
every ``catalogue_refresh_s``, so a model an operator adds is served without a restart and every
replica agrees. :class:`Catalogue` is the in-memory copy handlers read; :meth:`Catalogue.replace`
swaps its contents in place, so everything holding it sees the new models.

Amounts are integers of the smallest credit unit, the micro-credit (10^-6 credit). A price of N
credits per million tokens is therefore exactly N micro-credits per token.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from protocol.catalogue import SEED, CatalogueModel, PublishedModel
from protocol.fingerprint import Fingerprint
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


SEED_PRICE = Price(input_per_1m=10, output_per_1m=20)
"""What the seeded models cost (migration 0010 writes the same figures)."""


@dataclass(frozen=True, slots=True)
class PricedModel:
    model: CatalogueModel
    price: Price
    fingerprint: Fingerprint | None = None  # the weights' greedy answers to fixed prompts

    @property
    def id(self) -> ModelId:
        return self.model.id

    def published(self, nodes: int = 0) -> PublishedModel:
        return PublishedModel(
            **self.model.model_dump(), price_input_per_1m=self.price.input_per_1m,
            price_output_per_1m=self.price.output_per_1m,
            fingerprinted=self.fingerprint is not None, nodes=nodes,
        )


class Catalogue:
    def __init__(self, models: Iterable[PricedModel] = ()) -> None:
        self._models: dict[ModelId, PricedModel] = {}
        self.fingerprints: dict[ModelId, Fingerprint] = {}
        """Every fingerprinted model's fingerprint; the same dict for the catalogue's life."""
        self.version: object = None  # the store's version of what it holds, if loaded from one
        self.replace(models)

    @classmethod
    def default(cls, fingerprints: Mapping[ModelId, Fingerprint] | None = None) -> Catalogue:
        """The seed catalogue, as a new database starts with it (no fingerprints: a deployment
        computes its own), or with the ``fingerprints`` given."""
        given = fingerprints or {}
        return cls(PricedModel(m, SEED_PRICE, given.get(m.id)) for m in SEED)

    def replace(self, models: Iterable[PricedModel]) -> None:
        """Take on ``models`` as the whole catalogue (a reload from the database)."""
        fresh = {m.id: m for m in models}
        self._models = fresh
        fingerprints = {m.id: m.fingerprint for m in fresh.values() if m.fingerprint is not None}
        for gone in self.fingerprints.keys() - fingerprints.keys():
            del self.fingerprints[gone]
        self.fingerprints.update(fingerprints)

    def get(self, model_id: str) -> PricedModel | None:
        return self._models.get(ModelId(model_id))

    def __iter__(self) -> Iterator[PricedModel]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)

    def accepts_weights(self, model_id: str, sha256: str | None) -> bool:
        """Whether a node may serve ``model_id`` with weights of this hash."""
        priced = self.get(model_id)
        if priced is None:
            return False
        known = {w.sha256 for w in priced.model.weights}
        return sha256 is None or not known or sha256 in known
