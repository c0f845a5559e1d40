"""Sustained generation speed, measured by the coordinator from the tokens it receives.

A node's own report is never used: each finished job long enough to mean something gives one
sample, and the node's figure is the median of its recent samples, so one slow or lucky job does
not move it.
"""

from __future__ import annotations

import statistics
from collections import deque

from protocol.ids import ModelId, NodeId

MIN_TOKENS_PER_SAMPLE = 8
SAMPLES_KEPT = 15


def generation_speed(tokens: int, first_token_at: float, last_token_at: float) -> float | None:
    """Tokens per second between the first and last token of one job, if measurable."""
    elapsed = last_token_at - first_token_at
    if tokens < MIN_TOKENS_PER_SAMPLE or elapsed <= 0:
        return None
    return (tokens - 1) / elapsed


class ThroughputBook:
    """Recent speed samples per node and model."""

    def __init__(self, samples_kept: int = SAMPLES_KEPT) -> None:
        self._samples: dict[tuple[NodeId, ModelId], deque[float]] = {}
        self._kept = samples_kept

    def record(self, node_id: NodeId, model: ModelId, tok_s: float) -> float:
        """Add a sample; returns the node's sustained speed for the model."""
        samples = self._samples.setdefault((node_id, model), deque(maxlen=self._kept))
        samples.append(tok_s)
        return statistics.median(samples)

    def sustained(self, node_id: NodeId, model: ModelId) -> float | None:
        samples = self._samples.get((node_id, model))
        return statistics.median(samples) if samples else None
