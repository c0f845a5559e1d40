"""Who to pay for nodes that left mid-call: their settlement comes after they are gone."""

from __future__ import annotations

from collections import OrderedDict

from protocol.ids import NodeId

DEPARTED_KEPT = 10_000


class DepartedPayees:
    """The payee of each recently departed node, the latest ``limit`` kept: a call settles
    within its own lifetime of its node leaving, so an older entry would never be read again."""

    def __init__(self, limit: int = DEPARTED_KEPT) -> None:
        self._limit = limit
        self._payees: OrderedDict[NodeId, int] = OrderedDict()

    def remember(self, node_id: NodeId, payee_account_id: int) -> None:
        self._payees[node_id] = payee_account_id
        self._payees.move_to_end(node_id)
        while len(self._payees) > self._limit:
            self._payees.popitem(last=False)

    def get(self, node_id: NodeId) -> int | None:
        return self._payees.get(node_id)

    def __len__(self) -> int:
        return len(self._payees)
