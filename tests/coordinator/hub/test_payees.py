"""A departed node's payee is remembered for its late settlements, the latest ones only."""

from __future__ import annotations

from coordinator.hub.payees import DepartedPayees
from protocol.ids import NodeId


def test_the_latest_departures_are_kept_and_older_ones_pruned() -> None:
    payees = DepartedPayees(limit=2)
    payees.remember(NodeId("a"), 1)
    payees.remember(NodeId("b"), 2)
    payees.remember(NodeId("a"), 3)  # left again, paying someone else now
    payees.remember(NodeId("c"), 4)
    assert len(payees) == 2
    assert payees.get(NodeId("a")) == 3
    assert payees.get(NodeId("b")) is None
    assert payees.get(NodeId("c")) == 4
