"""What the points routes use of the coordinator's services."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from coordinator.catalogue import Catalogue
from coordinator.points.keeper import PointsKeeper
from coordinator.settings import CoordinatorSettings


class PointsNeeds(Protocol):
    @property
    def settings(self) -> CoordinatorSettings: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def points(self) -> PointsKeeper: ...


POINTS_NEEDS = web.AppKey("points_needs", PointsNeeds)
