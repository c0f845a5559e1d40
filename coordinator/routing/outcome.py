"""How a job ended, as the breaker and the health window see it."""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"
    """The consumer's own error (a 4xx): never held against the node."""
