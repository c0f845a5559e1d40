"""Who to pay for nodes that left mid-call: their settlement comes after they are gone."""

from __future__ import annotations

from coordinator.bounded import BoundedLRU
from protocol.ids import NodeId

DEPARTED_KEPT = 10_000


class DepartedPayees(BoundedLRU[NodeId, int]):
    """The payee of each recently departed node, the latest ``limit`` kept: a call settles
    within its own lifetime of its node leaving, so an older entry would never be read again."""

    __slots__ = ()

    def __init__(self, limit: int = DEPARTED_KEPT) -> None:
        super().__init__(limit)

    def remember(self, node_id: NodeId, payee_account_id: int) -> None:
        self[node_id] = payee_account_id
