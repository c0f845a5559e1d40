"""What the probes (the scheduler, re-scoring, verdicts) use of the coordinator's services."""

from __future__ import annotations

import random
from typing import Protocol

from aiohttp import web

from coordinator.catalogue import Catalogue
from coordinator.clock import Clock
from coordinator.hub.admission import Admission
from coordinator.hub.calls import NodeCalls
from coordinator.hub.observation import ContributionSink, Observer
from coordinator.hub.payees import PayeeView
from coordinator.points.keeper import PointsKeeper
from coordinator.probes.fingerprints import FingerprintSource
from coordinator.probes.sources import ProbeSource
from coordinator.routing import Router
from coordinator.settings import CoordinatorSettings
from protocol.ids import ModelId


class ProbeNeeds(PayeeView, Protocol):
    @property
    def settings(self) -> CoordinatorSettings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def router(self) -> Router: ...
    @property
    def calls(self) -> NodeCalls: ...
    @property
    def admission(self) -> Admission: ...
    @property
    def points(self) -> PointsKeeper: ...
    @property
    def contributions(self) -> ContributionSink: ...
    @property
    def observers(self) -> list[Observer]: ...  # told of every job attempt
    @property
    def probe_sources(self) -> list[ProbeSource]: ...  # asked in order; the first draw wins
    @property
    def fingerprints(self) -> FingerprintSource: ...
    @property
    def waiting(self) -> dict[ModelId, int]: ...  # consumer requests queued per model


PROBE_NEEDS = web.AppKey("probe_needs", ProbeNeeds)
