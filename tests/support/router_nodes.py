"""The nodes and the clock the router tests build on: a model or two, outcomes by letter, and a
node that has been on the network for a month unless told otherwise."""

from __future__ import annotations

from collections.abc import Iterable

from coordinator.routing import NodeInfo, Outcome, RoutingConstants
from protocol.ids import ModelId, NodeId

DAY = 86_400.0
WALL0 = 1_700_000_000.0
MODEL = ModelId("gemma-3-270m")
OTHER = ModelId("qwen-2.5-0.5b")
S, F, N = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL
CONSTANTS = RoutingConstants()


def node(
    name: str,
    *,
    slots: int = 4,
    declared: float | None = None,
    models: Iterable[ModelId] = (MODEL,),
    first_seen: float = WALL0 - 30 * DAY,
    context: int | None = None,
) -> NodeInfo:
    """A node serving ``models`` on ``slots`` slots, first seen ``first_seen`` (wall clock),
    with a context of ``context`` tokens for each (``None``: not declared)."""
    served = frozenset(models)
    return NodeInfo(
        node_id=NodeId(name),
        models=served,
        slots=slots,
        declared_tok_s=declared,
        first_seen=first_seen,
        contexts={} if context is None else dict.fromkeys(served, context),
    )
