"""Who is paid for a node's work: the one place a settlement or a re-scoring looks it up.

A node connected here, one connected to another replica, or one gone mid-call (its settlement
comes after it left): each has its payee account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from coordinator.bounded import BoundedLRU
from coordinator.bus.base import NodePresence
from coordinator.hub.live import NodeHub
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


class PayeeView(Protocol):
    @property
    def hub(self) -> NodeHub: ...
    @property
    def remote_nodes(self) -> Mapping[NodeId, NodePresence]: ...
    @property
    def departed_payees(self) -> DepartedPayees: ...


def payee_of(view: PayeeView, node_id: NodeId) -> int | None:
    """The account a node's pay goes to: connected here, to another replica, or gone since."""
    live = view.hub.get(node_id)
    if live is not None:
        return live.payee_account_id
    remote = view.remote_nodes.get(node_id)
    if remote is not None:
        return remote.payee_account_id
    return view.departed_payees.get(node_id)
