"""Reconnection delays: a jittered first retry, then capped exponential growth."""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff(
    initial_s: float = 1.0, max_s: float = 30.0, factor: float = 1.618,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Delays before each reconnection attempt; restart the generator after a good session."""
    draw = rng or random.Random()
    # Spread the first retry so a coordinator restart is not met by every node at once.
    yield draw.uniform(0, initial_s)
    delay = initial_s
    while True:
        yield min(delay, max_s) * draw.uniform(0.8, 1.0)
        delay = min(delay * factor, max_s)
