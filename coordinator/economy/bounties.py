"""Computed bounties, as pure functions: how much extra each model's serving nodes earn.

A model is under-supplied when the tokens its consumers received over the last window, scaled up
to the utilisation the network should run at, exceed what its live nodes can produce:

- capacity (tok/s) = sum over live, non-draining nodes serving the model of their per-stream
  speed (measured by the coordinator, else declared, else the routing floor) times the slots
  their ramp-up and breaker allow now;
- demand (tok/s) = (completion tokens delivered in the window + tokens refused in it) / window /
  target utilisation, where a request refused for want of a node (no live node, every node
  busy, queue full) counts as the model's average delivered call, else as
  ``tokens_per_refused_request``: without it, a model nobody serves would show no demand at all;
- multiplier = demand / capacity, between 1 and ``max_bounty_multiplier``; a model with demand
  and no live capacity at all gets the maximum; a multiplier configured for the model wins.

The leader computes these every interval (:mod:`coordinator.economy.bounty_keeper`); every
replica holds the result in a :class:`BountyBoard` that settling a call reads without I/O.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from coordinator.economy.postings import bounty_multiplier_for
from coordinator.settings.economy import EconomySettings


@dataclass(frozen=True, slots=True)
class NodeSupply:
    """What one live node can produce now, as its replica sees it."""

    models: frozenset[str]
    slots: int  # concurrent jobs its ramp-up and breaker allow now
    tok_s: float | None  # per-stream speed: measured, else declared; None when unknown
    draining: bool = False


@dataclass(frozen=True, slots=True)
class ModelBounty:
    model: str
    multiplier: float
    demand_tok_s: float
    capacity_tok_s: float


@dataclass(frozen=True, slots=True)
class Delivered:
    """A model's settled calls over the window."""

    tokens: int
    calls: int


@dataclass(slots=True)
class _RefusalBucket:
    minute: int
    by_model: dict[str, int] = field(default_factory=dict)
    by_account: dict[int, int] = field(default_factory=dict)
    by_network: dict[str, int] = field(default_factory=dict)


class RefusalTally:
    """Requests refused for want of a node, per model, over the last ``window_s``: one replica's
    count, kept in buckets of ``bucket_s`` (``now`` is wall-clock seconds).

    Only funded requests are told to it (the gateway adds one once the request's credit hold is
    granted), and each account and each client network counts at most ``per_account`` and
    ``per_network`` refusals in the window: refused-request spam buys no bounty.
    """

    def __init__(
        self, window_s: float, bucket_s: float = 60.0, *,
        per_account: int | None = None, per_network: int | None = None,
    ) -> None:
        self._window_s = window_s
        self._bucket_s = bucket_s
        self._per_account = per_account
        self._per_network = per_network
        self._buckets: deque[_RefusalBucket] = deque()

    def add(self, model: str, now: float, *, account: int = 0, network: str = "") -> bool:
        """Count one refused request; ``False`` when its account or network is at its cap."""
        self._forget(now)
        if _reached(self._per_account, sum(b.by_account.get(account, 0) for b in self._buckets)):
            return False
        if _reached(self._per_network, sum(b.by_network.get(network, 0) for b in self._buckets)):
            return False
        minute = math.floor(now / self._bucket_s)
        if not self._buckets or self._buckets[-1].minute != minute:
            self._buckets.append(_RefusalBucket(minute))
        bucket = self._buckets[-1]
        bucket.by_model[model] = bucket.by_model.get(model, 0) + 1
        bucket.by_account[account] = bucket.by_account.get(account, 0) + 1
        bucket.by_network[network] = bucket.by_network.get(network, 0) + 1
        return True

    def counts(self, now: float) -> dict[str, int]:
        self._forget(now)
        totals: dict[str, int] = {}
        for bucket in self._buckets:
            for model, count in bucket.by_model.items():
                totals[model] = totals.get(model, 0) + count
        return totals

    def _forget(self, now: float) -> None:
        # A bucket counts while any of it is inside the window.
        ended = math.floor((now - self._window_s) / self._bucket_s) - 1
        while self._buckets and self._buckets[0].minute <= ended:
            self._buckets.popleft()


def _reached(cap: int | None, count: int) -> bool:
    return cap is not None and count >= cap


def refused_tokens(
    refused: Mapping[str, int], delivered: Mapping[str, Delivered], settings: EconomySettings
) -> dict[str, int]:
    """The tokens refused requests would have taken: the model's average delivered call each,
    else ``tokens_per_refused_request``."""
    default = settings.bounties.tokens_per_refused_request
    tokens = {}
    for model, count in refused.items():
        served = delivered.get(model)
        per_call = served.tokens / served.calls if served and served.calls else default
        tokens[model] = round(max(0, count) * per_call)
    return tokens


def demand_since(now: datetime, settings: EconomySettings) -> datetime:
    """Where the demand window of a recomputation at ``now`` starts."""
    return now - timedelta(seconds=settings.bounties.window_s)


def capacity_by_model(nodes: Iterable[NodeSupply], *, unknown_tok_s: float) -> dict[str, float]:
    """Live tokens per second per model; a node of unknown speed counts at ``unknown_tok_s``
    (the routing floor: it would not be routed to if it were slower)."""
    capacity: dict[str, float] = {}
    for node in nodes:
        if node.draining or node.slots <= 0:
            continue
        supply = node.slots * (node.tok_s if node.tok_s is not None else unknown_tok_s)
        for model in node.models:
            capacity[model] = capacity.get(model, 0.0) + supply
    return capacity


def demand_tok_s(tokens: int, settings: EconomySettings) -> float:
    """The capacity a model needs to serve ``tokens`` per window at the target utilisation."""
    bounties = settings.bounties
    return max(0, tokens) / bounties.window_s / bounties.target_utilisation


def compute_bounties(
    models: Iterable[str], delivered_tokens: Mapping[str, int], capacity: Mapping[str, float],
    settings: EconomySettings, refused: Mapping[str, int] | None = None,
) -> tuple[ModelBounty, ...]:
    """Every catalogue model's bounty from its delivered (and refused) tokens and live
    capacity."""
    refused = refused or {}
    bounties = []
    for model in models:
        wanted = delivered_tokens.get(model, 0) + refused.get(model, 0)
        demand = demand_tok_s(wanted, settings)
        supply = capacity.get(model, 0.0)
        bounties.append(ModelBounty(
            model=model, multiplier=bounty_multiplier_for(model, settings, demand, supply),
            demand_tok_s=demand, capacity_tok_s=supply,
        ))
    return tuple(bounties)


@dataclass
class BountyBoard:
    """The bounties in force on this replica: the latest the leader stored, read periodically."""

    bounties: dict[str, ModelBounty] = field(default_factory=dict)
    computed_at: datetime | None = None
    epoch: int = 0  # the leader term that computed them

    def multiplier(self, model: str, settings: EconomySettings) -> float:
        """The multiplier a call to ``model`` settles with: configured, else computed, else 1."""
        if model in settings.bounty_multipliers:
            return bounty_multiplier_for(model, settings)
        stored = self.bounties.get(model)
        if stored is None:
            return 1.0
        return min(max(1.0, stored.multiplier), settings.max_bounty_multiplier)

    def replace(
        self, bounties: Iterable[ModelBounty], *, computed_at: datetime | None, epoch: int
    ) -> None:
        self.bounties = {bounty.model: bounty for bounty in bounties}
        self.computed_at = computed_at
        self.epoch = epoch
