"""What the hub (node connections, membership, replication) uses of the coordinator's services.

The cloud fleet joins its nodes through the same membership, so it is given this view too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Protocol

from aiohttp import web

from coordinator.bus.base import Bus, NodePresence
from coordinator.catalogue import Catalogue
from coordinator.economy.bounties import RefusalTally
from coordinator.hub.admission import Admission
from coordinator.hub.calls import NodeCalls
from coordinator.hub.live import NodeHub
from coordinator.hub.payees import DepartedPayees
from coordinator.needs import CoreNeeds
from coordinator.routing import Router
from protocol.ids import NodeId


class Removals(Protocol):
    """Nodes removed from the network (the points keeper stores them)."""

    def recent_removals(self, now: datetime) -> tuple[NodeId, ...]: ...

    async def remove_here(self, node_id: NodeId, *, announce: bool = True) -> None: ...


class HubNeeds(CoreNeeds, Protocol):
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def hub(self) -> NodeHub: ...
    @property
    def router(self) -> Router: ...
    @property
    def bus(self) -> Bus: ...
    @property
    def calls(self) -> NodeCalls: ...
    @property
    def admission(self) -> Admission: ...
    @property
    def refusals(self) -> RefusalTally: ...
    @property
    def points(self) -> Removals: ...
    @property
    def departed_payees(self) -> DepartedPayees: ...
    @property
    def remote_nodes(self) -> dict[NodeId, NodePresence]: ...  # kept in step with the bus
    @property
    def refused_nodes(self) -> dict[NodeId, str]: ...  # node -> why it may not join
    @property
    def stopping(self) -> asyncio.Event: ...  # set once the app starts shutting down


HUB_NEEDS = web.AppKey("hub_needs", HubNeeds)
