"""What the economy's routes and keepers use of the coordinator's services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from coordinator.bus.base import Bus, NodePresence, ReplicaPresence
from coordinator.catalogue import Catalogue
from coordinator.economy.bounties import BountyBoard
from coordinator.economy.ledger import Ledger
from coordinator.needs import CoreNeeds
from protocol.ids import NodeId


class EconomyNeeds(CoreNeeds, Protocol):
    @property
    def ledger(self) -> Ledger: ...
    @property
    def bus(self) -> Bus: ...
    @property
    def bounties(self) -> BountyBoard: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def remote_nodes(self) -> Mapping[NodeId, NodePresence]: ...

    def local_presence(self) -> ReplicaPresence:
        """The nodes connected to this replica, as the other replicas see them."""
        ...


ECONOMY_NEEDS = web.AppKey("economy_needs", EconomyNeeds)
