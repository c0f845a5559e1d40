"""The per-model index of nodes that can take a job now, best first.

Keys sort by most spare capacity, then best health, then nodes connected to this replica before
those on another, then node id, so the best nodes are a contiguous run at the front; a pick is
two bisections and a random index into that run. (Among equally loaded, equally healthy nodes a
local one saves relaying the job and its tokens through Redis.)
"""

from __future__ import annotations

import random
from collections.abc import Collection

from sortedcontainers import SortedList

from protocol.ids import NodeId

RouteKey = tuple[float, float, int, NodeId]
"""``(-spare_capacity, -health_tier, remote, node_id)``: smaller is better."""

HEALTH_TIER = 0.05
"""Health scores within one tier rank as equally healthy: over a node's window such a gap is a
few outcomes, noise rather than signal, and ranking finer would pile every job on whichever idle
node scores a hair higher (and defeat the preference for a node on this replica)."""


def route_key(spare: float, health: float, node_id: NodeId, *, remote: bool = False) -> RouteKey:
    return (-spare, -round(health / HEALTH_TIER) * HEALTH_TIER, int(remote), node_id)


class CandidateIndex:
    """Eligible nodes for one model, ordered by :data:`RouteKey`."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys = SortedList()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: RouteKey) -> bool:
        return key in self._keys

    def add(self, key: RouteKey) -> None:
        self._keys.add(key)

    def remove(self, key: RouteKey) -> None:
        self._keys.remove(key)

    def best(self, rng: random.Random, excluded: Collection[RouteKey] = ()) -> NodeId | None:
        """A uniformly random node among the best-keyed ones not in ``excluded``.

        Costs O(log n) per run of equal (spare, health, remote) keys that exclusions empty, so
        O(k log n) with k exclusions.
        """
        keys = self._keys
        if not excluded:
            if not keys:
                return None
            neg_spare, neg_health, remote, _ = keys[0]
            end: int = keys.bisect_left((neg_spare, neg_health, remote + 1))
            chosen: RouteKey = keys[rng.randrange(end)]
            return chosen[3]
        skipped = sorted(keys.bisect_left(key) for key in excluded if key in keys)
        start = 0
        while start < len(keys):
            neg_spare, neg_health, remote, _ = keys[start]
            end = keys.bisect_left((neg_spare, neg_health, remote + 1))
            in_run = [position for position in skipped if start <= position < end]
            available = end - start - len(in_run)
            if available > 0:
                position = start + rng.randrange(available)
                for taken in in_run:
                    if taken <= position:
                        position += 1
                chosen = keys[position]
                return chosen[3]
            start = end
        return None
