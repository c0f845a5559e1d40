"""Pure routing: which node takes a job, and the rules behind it.

Speed floor, least-loaded choice, the forgiving breaker, the health window and ramp-up. No I/O
and no clocks of its own: callers pass ``now`` (monotonic seconds), ``wall_now`` (epoch seconds)
and a ``random.Random``.
"""

from __future__ import annotations

from coordinator.routing.breaker import Breaker, BreakerState
from coordinator.routing.constants import RoutingConstants
from coordinator.routing.health import BUCKET_S, HealthBucket, HealthWindow, laplace_score
from coordinator.routing.index import CandidateIndex, RouteKey, route_key
from coordinator.routing.nodes import NodeInfo, NodeSnapshot
from coordinator.routing.outcome import Outcome
from coordinator.routing.router import Router
from coordinator.routing.rules import admitted_capacity, passes_floor, ramp_fraction, spare_capacity

__all__ = [
    "BUCKET_S",
    "Breaker",
    "BreakerState",
    "CandidateIndex",
    "HealthBucket",
    "HealthWindow",
    "NodeInfo",
    "NodeSnapshot",
    "Outcome",
    "RouteKey",
    "Router",
    "RoutingConstants",
    "admitted_capacity",
    "laplace_score",
    "passes_floor",
    "ramp_fraction",
    "route_key",
    "spare_capacity",
]
