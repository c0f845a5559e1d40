"""What the consumer gateway uses of the coordinator's services."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from coordinator.bus.base import NodePresence
from coordinator.catalogue import Catalogue
from coordinator.clock import Clock
from coordinator.economy.bounties import BountyBoard, RefusalTally
from coordinator.economy.ledger import Ledger
from coordinator.hub.calls import NodeCalls
from coordinator.hub.live import NodeHub
from coordinator.hub.payees import DepartedPayees
from coordinator.routing import Router
from coordinator.settings import CoordinatorSettings
from coordinator.store.database import Database
from protocol.ids import ModelId, NodeId


class GatewayNeeds(Protocol):
    @property
    def settings(self) -> CoordinatorSettings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def database(self) -> Database: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def router(self) -> Router: ...
    @property
    def hub(self) -> NodeHub: ...
    @property
    def calls(self) -> NodeCalls: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def bounties(self) -> BountyBoard: ...
    @property
    def refusals(self) -> RefusalTally: ...  # requests refused for want of a node
    @property
    def waiting(self) -> dict[ModelId, int]: ...  # requests queued per model
    @property
    def remote_nodes(self) -> Mapping[NodeId, NodePresence]: ...
    @property
    def departed_payees(self) -> DepartedPayees: ...


GATEWAY_NEEDS = web.AppKey("gateway_needs", GatewayNeeds)
