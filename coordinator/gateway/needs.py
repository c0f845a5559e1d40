"""What the consumer gateway uses of the coordinator's services."""

from __future__ import annotations

import random
from typing import Protocol

from aiohttp import web

from coordinator.catalogue import Catalogue
from coordinator.economy.bounties import BountyBoard, RefusalTally
from coordinator.economy.ledger import Ledger
from coordinator.hub.calls import NodeCalls
from coordinator.hub.payees import PayeeView
from coordinator.needs import CoreNeeds
from coordinator.routing import Router
from protocol.ids import ModelId


class GatewayNeeds(CoreNeeds, PayeeView, Protocol):
    @property
    def rng(self) -> random.Random: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def router(self) -> Router: ...
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


GATEWAY_NEEDS = web.AppKey("gateway_needs", GatewayNeeds)
