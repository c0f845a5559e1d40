"""The contexts live nodes serve each model with, sorted, for picks that need a long one.

A pick that needs a context of at least ``min_context`` tokens passes over the (few) nodes
with a smaller one, found by bisection; the largest context on offer is read from the end.
A node that declared no context for a model sorts past every real one, so no ``min_context``
passes it over and it never counts as the largest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sortedcontainers import SortedList

from protocol.ids import ModelId, NodeId

UNKNOWN_CONTEXT = 2**62
"""Where a node of unknown context sorts among the contexts: past every real one, so no
``min_context`` passes it over."""

Offer = tuple[ModelId, int]
"""One model a node serves and the context it serves it with (:data:`UNKNOWN_CONTEXT` when
it declared none)."""


def declared_offers(
    models: Iterable[ModelId], contexts: Mapping[ModelId, int]
) -> tuple[Offer, ...]:
    """A node's offers from its declaration, sorted by model."""
    return tuple((model, contexts.get(model, UNKNOWN_CONTEXT)) for model in sorted(models))


class ContextOffers:
    """Per model, ``(context, node_id)`` of every node offering it, sorted."""

    __slots__ = ("_by_model",)

    def __init__(self) -> None:
        self._by_model: dict[ModelId, SortedList] = {}

    def replace(self, node_id: NodeId, old: Iterable[Offer], new: Iterable[Offer]) -> None:
        """The node withdraws its ``old`` offers (all of them present) and makes ``new`` ones."""
        for model, context in old:
            self._by_model[model].remove((context, node_id))
        for model, context in new:
            self._by_model.setdefault(model, SortedList()).add((context, node_id))

    def largest(self, model: ModelId) -> int | None:
        """The largest context declared for ``model``; ``None`` when none was."""
        offers = self._by_model.get(model)
        if not offers:
            return None
        end = offers.bisect_left((UNKNOWN_CONTEXT,))
        return int(offers[end - 1][0]) if end > 0 else None

    def smaller_than(self, model: ModelId, min_context: int) -> list[NodeId]:
        """Nodes offering ``model`` with a context under ``min_context``, smallest first."""
        offers = self._by_model.get(model)
        if not offers or min_context <= 0:
            return []
        end = offers.bisect_left((min_context,))
        return [node_id for _, node_id in offers.islice(0, end)]
