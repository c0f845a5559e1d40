"""Settings of the unannounced health checks (how often is a points constant: probe_interval_s)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ProbeSettings(BaseModel):
    """``KORETEX_PROBES__*``: whether the coordinator probes nodes, and how it spreads them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default=True,
        description="Send every connected node unannounced health checks (off only in tests).",
    )
    interval_s: float | None = Field(
        default=None,
        gt=0.0,
        description="Seconds between checks of one node; unset: the points constants'"
        " probe_interval_s (about one a minute).",
    )
    jitter: float = Field(
        default=0.5,
        ge=0.0,
        lt=1.0,
        description="Each wait is the interval times a uniform draw in [1 - jitter, 1 + jitter],"
        " so checks never arrive on a beat a node could learn.",
    )
    tick_s: float = Field(
        default=1.0, gt=0.0, description="How often the scheduler looks for nodes that are due."
    )
