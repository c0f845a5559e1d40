"""What nearly every part of the coordinator uses: the base of the packages' views of Services."""

from __future__ import annotations

from typing import Protocol

from coordinator.clock import Clock
from coordinator.settings import CoordinatorSettings
from coordinator.store.database import Database


class CoreNeeds(Protocol):
    @property
    def settings(self) -> CoordinatorSettings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def database(self) -> Database: ...
