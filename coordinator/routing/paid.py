"""Which nodes may take no paid job for a model: the admission exam's result, as routing sees it.

A node held for a model still takes its probes; :meth:`Router.choose` passes it over for paid
jobs for that model only.
"""

from __future__ import annotations

from collections.abc import Set

from protocol.ids import ModelId, NodeId


class PaidHolds:
    """The nodes held back from paid jobs, per model."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[ModelId, set[NodeId]] = {}

    def hold(self, node_id: NodeId, model: ModelId) -> bool:
        """Hold the node back for ``model``; whether it was not held already."""
        held = self._held.setdefault(model, set())
        if node_id in held:
            return False
        held.add(node_id)
        return True

    def admit(self, node_id: NodeId, model: ModelId) -> bool:
        """Let the node take paid jobs for ``model`` again; whether it was held."""
        held = self._held.get(model)
        if held is None or node_id not in held:
            return False
        held.discard(node_id)
        return True

    def forget(self, node_id: NodeId) -> None:
        """Drop the node from every model's holds."""
        for held in self._held.values():
            held.discard(node_id)

    def held_for(self, model: ModelId) -> Set[NodeId]:
        """The nodes held back for ``model``."""
        return self._held.get(model, frozenset())

    def models_held(self, node_id: NodeId) -> tuple[ModelId, ...]:
        """The models the node is held back for, sorted."""
        return tuple(sorted(model for model, held in self._held.items() if node_id in held))

    def eligible(self, node_id: NodeId, model: ModelId) -> bool:
        """Whether no hold keeps the node from paid jobs for ``model``."""
        return node_id not in self._held.get(model, ())
