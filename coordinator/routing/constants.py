"""The routing constants: the network's public promise to node operators, in numbers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RoutingConstants(BaseModel):
    """Every number the routing rules use; published read-only at ``/v1/network/constants``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    floor_tok_s: float = Field(
        default=5.0,
        ge=0.0,
        description=(
            "Minimum sustained generation speed, in tokens per second, for a node to receive "
            "requests. A node not yet measured is judged on its declared speed."
        ),
    )
    breaker_failures: int = Field(
        default=3,
        ge=1,
        description="Failures within breaker_window_s that park a node.",
    )
    breaker_window_s: float = Field(
        default=60.0,
        gt=0.0,
        description="Window, in seconds, over which a node's failures are counted.",
    )
    breaker_park_s: float = Field(
        default=15.0,
        gt=0.0,
        description=(
            "Seconds a parked node receives no requests. Afterwards a single trial request is "
            "sent: a success restores the node fully, a failure parks it again."
        ),
    )
    health_window_days: int = Field(
        default=14,
        ge=1,
        description=(
            "Days of successes and failures behind a node's health score, which breaks ties "
            "between equally loaded nodes."
        ),
    )
    ramp_start_fraction: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description=(
            "Fraction of its declared slots a newly seen node may fill; rises linearly to all "
            "of them over ramp_days."
        ),
    )
    ramp_days: float = Field(
        default=7.0,
        ge=0.0,
        description="Days from first being seen until a node may fill all its declared slots.",
    )
