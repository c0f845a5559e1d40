"""What enforcing the request limits uses of the coordinator's services."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from coordinator.limits.rates import RateStore
from coordinator.limits.streams import StreamGate
from coordinator.settings import CoordinatorSettings


class LimitNeeds(Protocol):
    @property
    def settings(self) -> CoordinatorSettings: ...
    @property
    def rates(self) -> RateStore: ...
    @property
    def streams(self) -> StreamGate: ...


LIMIT_NEEDS = web.AppKey("limit_needs", LimitNeeds)
