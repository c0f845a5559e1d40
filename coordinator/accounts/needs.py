"""What the account routes use of the coordinator's services (see ``coordinator.services``)."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from coordinator.accounts.api_keys import KeyAuthenticator
from coordinator.economy.ledger import Ledger
from coordinator.needs import CoreNeeds
from coordinator.routing import Router
from coordinator.routing.throughput import ThroughputBook


class AccountNeeds(CoreNeeds, Protocol):
    @property
    def ledger(self) -> Ledger: ...
    @property
    def keys(self) -> KeyAuthenticator: ...
    @property
    def router(self) -> Router: ...  # an operator's node pages show its health
    @property
    def throughput(self) -> ThroughputBook: ...


ACCOUNT_NEEDS = web.AppKey("account_needs", AccountNeeds)
