"""Everything the coordinator's parts share, built once per app by ``build_services`` and frozen.

No package imports this module: each states what it uses as a view (``coordinator.<package>.needs``:
``GatewayNeeds``, ``HubNeeds``, ``ProbeNeeds``...) reached through its own AppKey, and ``Services``
satisfies every view. ``add_views`` puts it behind each of those keys.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from aiohttp import web

from coordinator.accounts.api_keys import KeyAuthenticator
from coordinator.accounts.needs import ACCOUNT_NEEDS
from coordinator.bus.base import Bus, NodePresence, ReplicaPresence
from coordinator.catalogue import Catalogue
from coordinator.clock import Clock
from coordinator.economy.bounties import BountyBoard, RefusalTally
from coordinator.economy.ledger import Ledger
from coordinator.economy.needs import ECONOMY_NEEDS
from coordinator.gateway.needs import GATEWAY_NEEDS
from coordinator.hub.admission import Admission
from coordinator.hub.calls import CallTimeouts, NodeCalls
from coordinator.hub.live import NodeHub
from coordinator.hub.needs import HUB_NEEDS
from coordinator.hub.observation import ContributionSink, Observer
from coordinator.hub.payees import DepartedPayees
from coordinator.hub.replication import local_presence
from coordinator.limits import RateStore, StreamGate
from coordinator.limits.needs import LIMIT_NEEDS
from coordinator.points.keeper import PointsKeeper
from coordinator.points.needs import POINTS_NEEDS
from coordinator.probes.fingerprints import FingerprintSource, fingerprint_source
from coordinator.probes.needs import PROBE_NEEDS
from coordinator.probes.prompts import PromptPool
from coordinator.probes.sources import ProbeSource
from coordinator.routing import Router
from coordinator.routing.throughput import ThroughputBook
from coordinator.settings import CoordinatorSettings
from coordinator.store.database import Database
from protocol.ids import ModelId, NodeId


@dataclass(frozen=True)
class Services:
    settings: CoordinatorSettings
    clock: Clock
    rng: random.Random
    database: Database
    catalogue: Catalogue
    hub: NodeHub
    router: Router
    keys: KeyAuthenticator
    ledger: Ledger
    bus: Bus  # to the other replicas, if any
    rates: RateStore  # per key/IP
    streams: StreamGate  # completions in flight per key
    throughput: ThroughputBook
    calls: NodeCalls  # the one way a job reaches a node
    admission: Admission  # who may take paid jobs for which model
    points: PointsKeeper  # the stored history and the standings scored from it
    contributions: ContributionSink  # where each contribution is recorded (the points keeper)
    fingerprints: FingerprintSource  # the admission exam's and re-scoring's secret probes
    probe_sources: list[ProbeSource]  # asked in order for each probe; the first draw wins
    refusals: RefusalTally  # requests refused for want of a node
    refused_nodes: dict[NodeId, str]  # node -> why it may not join (kept by the points keeper)
    observers: list[Observer]  # told of every job attempt
    bounties: BountyBoard = field(default_factory=BountyBoard)  # the leader's latest, read often
    departed_payees: DepartedPayees = field(default_factory=DepartedPayees)  # gone mid-call
    remote_nodes: dict[NodeId, NodePresence] = field(default_factory=dict)  # other replicas'
    waiting: dict[ModelId, int] = field(default_factory=dict)  # requests queued per model
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set as the app shuts down

    def local_presence(self) -> ReplicaPresence:
        return local_presence(self)


def build_services(
    settings: CoordinatorSettings, *, clock: Clock, rng: random.Random, database: Database,
    catalogue: Catalogue, ledger: Ledger, bus: Bus, rates: RateStore, streams: StreamGate,
) -> Services:
    hub, router, throughput = NodeHub(), Router(settings.routing), ThroughputBook()
    observers: list[Observer] = []
    refused_nodes: dict[NodeId, str] = {}
    points = PointsKeeper(settings.points, clock, database, hub, router, refused_nodes)
    observers.append(points.observe)
    fingerprints = fingerprint_source(catalogue, settings.authenticity)
    bounties = settings.economy.bounties
    return Services(
        settings=settings, clock=clock, rng=rng, database=database, catalogue=catalogue,
        hub=hub, router=router, keys=KeyAuthenticator(database), ledger=ledger, bus=bus,
        rates=rates, streams=streams, throughput=throughput,
        calls=NodeCalls(
            hub, router, bus, clock,
            CallTimeouts(settings.first_token_timeout_s, settings.inter_token_timeout_s),
            throughput, observers,
        ),
        # Without probes no exam could be sat: nodes are then admitted as they join.
        admission=Admission(
            router,
            settings.authenticity.exam_checks if settings.probes.enabled else 0,
            lambda model: (priced := catalogue.get(model)) is not None
            and priced.fingerprint is not None,
            enrollment_required=settings.identity.paid_requires_enrollment,
        ),
        points=points, contributions=points, fingerprints=fingerprints,
        # The fingerprint source answers only its share of probes; the rest fall through to
        # the prompt pool, which always answers.
        probe_sources=[fingerprints, PromptPool()],
        refusals=RefusalTally(
            bounties.window_s, per_account=bounties.refusals_per_account,
            per_network=bounties.refusals_per_network,
        ),
        refused_nodes=refused_nodes, observers=observers,
    )


SERVICES = web.AppKey("services", Services)


def add_views(app: web.Application, services: Services) -> None:
    """Put ``services`` behind the app's key and every package's view of it."""
    app[SERVICES] = services
    app[ACCOUNT_NEEDS] = services
    app[LIMIT_NEEDS] = services
    app[ECONOMY_NEEDS] = services
    app[HUB_NEEDS] = services
    app[POINTS_NEEDS] = services
    app[PROBE_NEEDS] = services
    app[GATEWAY_NEEDS] = services
