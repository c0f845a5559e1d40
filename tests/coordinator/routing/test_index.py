"""The candidate index: a pick is a uniform draw among the best-keyed nodes not excluded."""

from __future__ import annotations

import random

from coordinator.routing import CandidateIndex, route_key
from protocol.ids import NodeId


def test_candidate_index_skips_exclusions_within_and_across_runs() -> None:
    index = CandidateIndex()
    keys = [route_key(1.0, 0.5, NodeId(n)) for n in "abc"] + [route_key(0.5, 0.9, NodeId("d"))]
    for key in keys:
        index.add(key)
    rng = random.Random(0)
    assert {index.best(rng, keys[:1]) for _ in range(200)} == {"b", "c"}
    assert index.best(rng, keys[:3]) == "d"
    assert index.best(rng, keys) is None
