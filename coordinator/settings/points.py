"""Settings of the points machinery around the pure scoring: constants, recording, recomputing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from coordinator.settings.points_constants import PointsConstants


class PointsSettings(BaseModel):
    """``KORETEX_POINTS__*``: the versioned constants; how often history is stored and scored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    constants: PointsConstants = Field(default_factory=PointsConstants)
    flush_interval_s: float = Field(
        default=60.0,
        gt=0.0,
        description="How often finished hours of contributions are appended to the store.",
    )
    recompute_interval_s: float = Field(
        default=300.0,
        gt=0.0,
        description="How often every day's points are recomputed from the stored history.",
    )
    max_days: int = Field(
        default=90, ge=1, le=3660, description="Longest range the board and breakdowns show."
    )
