"""Everything a request handler needs, built once per app and reached through one AppKey."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from coordinator.accounts.api_keys import KeyAuthenticator
from coordinator.bus.base import Bus, NodePresence
from coordinator.bus.local import LocalBus
from coordinator.catalogue import Catalogue
from coordinator.clock import Clock, SystemClock
from coordinator.economy.bounties import BountyBoard, RefusalTally
from coordinator.economy.ledger import Ledger
from coordinator.hub.admission import Admission
from coordinator.hub.calls import CallTimeouts, NodeCalls
from coordinator.hub.live import NodeHub
from coordinator.hub.observation import ContributionSink, InMemoryContributions, Observer
from coordinator.hub.payees import DepartedPayees
from coordinator.limits import InMemoryRates, InMemoryStreams, RateStore, StreamGate
from coordinator.probes.prompts import PromptPool
from coordinator.probes.sources import ProbeSource
from coordinator.routing import Router
from coordinator.routing.throughput import ThroughputBook
from coordinator.settings import CoordinatorSettings
from coordinator.store.database import Database
from protocol.ids import ModelId, NodeId

if TYPE_CHECKING:
    from coordinator.points.keeper import PointsKeeper
    from coordinator.probes.fingerprints import FingerprintSource


@dataclass
class Services:
    settings: CoordinatorSettings
    clock: Clock
    database: Database
    catalogue: Catalogue
    hub: NodeHub
    router: Router
    keys: KeyAuthenticator
    ledger: Ledger
    rng: random.Random = field(default_factory=random.Random)
    throughput: ThroughputBook = field(default_factory=ThroughputBook)
    departed_payees: DepartedPayees = field(default_factory=DepartedPayees)  # gone mid-call
    shutting_down: bool = False
    waiting: dict[ModelId, int] = field(default_factory=dict)  # requests queued per model
    observers: list[Observer] = field(default_factory=list)  # told of every job attempt
    contributions: ContributionSink = field(default_factory=InMemoryContributions)
    # Asked in order for each probe; the first that answers wins (the prompt pool always does).
    probe_sources: list[ProbeSource] = field(default_factory=lambda: [PromptPool()])
    fingerprints: FingerprintSource | None = None  # the admission exam's probes, once set up
    refused_nodes: dict[NodeId, str] = field(default_factory=dict)  # node -> why it may not join
    points: PointsKeeper | None = None  # the stored history and the standings scored from it
    bus: Bus = field(default_factory=LocalBus)  # to the other replicas, if any
    remote_nodes: dict[NodeId, NodePresence] = field(default_factory=dict)  # on other replicas
    rates: RateStore = field(default_factory=lambda: InMemoryRates(SystemClock()))  # per key/IP
    streams: StreamGate = field(default_factory=InMemoryStreams)  # completions in flight per key
    bounties: BountyBoard = field(default_factory=BountyBoard)  # the leader's latest, read often
    refusals: RefusalTally = field(init=False)  # requests refused for want of a node
    admission: Admission = field(init=False)  # who may take paid jobs for which model
    calls: NodeCalls = field(init=False)  # the one way a job reaches a node

    def __post_init__(self) -> None:
        self.calls = NodeCalls(
            self.hub, self.router, self.bus, self.clock,
            CallTimeouts(
                self.settings.first_token_timeout_s, self.settings.inter_token_timeout_s
            ),
            self.throughput, self.observers,
        )
        bounties = self.settings.economy.bounties
        self.refusals = RefusalTally(
            bounties.window_s, per_account=bounties.refusals_per_account,
            per_network=bounties.refusals_per_network,
        )
        # Without probes no exam could be sat: nodes are then admitted as they join.
        self.admission = Admission(
            self.router,
            self.settings.authenticity.exam_checks if self.settings.probes.enabled else 0,
            lambda model: (priced := self.catalogue.get(model)) is not None
            and priced.fingerprint is not None,
            enrollment_required=self.settings.identity.paid_requires_enrollment,
        )


SERVICES = web.AppKey("services", Services)
