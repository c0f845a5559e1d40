"""The points constants: every number the scoring rules use, versioned and published to
operators. A methodology change is a new version of this model, applied by recomputing the
history from scratch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.ids import ModelId


class Tier(BaseModel):
    """A leaderboard band: providers with at least ``min_points`` in the board's range."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Name shown on the leaderboard.")
    min_points: float = Field(ge=0.0, description="Fewest points over the board's range.")


DEFAULT_TIERS = (
    Tier(name="Bronze", min_points=0.0),
    Tier(name="Silver", min_points=1_000.0),
    Tier(name="Gold", min_points=10_000.0),
    Tier(name="Platinum", min_points=100_000.0),
)
"""One good node (≈400 points a day at the defaults) reaches Silver in a few days and Gold in
about a month; Platinum takes a farm's month or a single node's year."""


class PointsConstants(BaseModel):
    """Every number behind ``score = uptime * (hardware + model_value) * trust - penalties``;
    published read-only to operators."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(
        default="1",
        min_length=1,
        description="Version of the methodology; every recomputation records which one it used.",
    )
    probe_interval_s: float = Field(
        default=60.0,
        gt=0.0,
        description=(
            "Seconds between unannounced health checks of a connected node (about one a minute). "
            "The checks' outcomes, not their number, drive the score."
        ),
    )
    extra_model_bonus: float = Field(
        default=0.10,
        ge=0.0,
        description=(
            "Model value grows by this fraction for each extra in-demand model a node served "
            "tokens of that day, beyond the first."
        ),
    )
    fake_model_collapse: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description=(
            "Fraction of its model value a node keeps on a day a check caught it serving a "
            "different model than it claims."
        ),
    )
    trust_start: float = Field(
        default=0.10,
        ge=0.0,
        le=1.0,
        description="Trust of a node on the day it is first seen, and after a fake-model verdict.",
    )
    trust_ramp_days: float = Field(
        default=14.0,
        ge=0.0,
        description=(
            "Clean days over which trust rises linearly from trust_start to 1. Days with a "
            "penalty do not count; a fake-model verdict starts the ramp again."
        ),
    )
    operator_decay: float = Field(
        default=0.85,
        gt=0.0,
        le=1.0,
        description=(
            "Per-operator diminishing returns: each day an operator's node scores, best first, "
            "count 1, operator_decay, operator_decay², … of their value."
        ),
    )
    fake_model_penalty: float = Field(
        default=250.0,
        ge=0.0,
        description="Points subtracted for each fake-model verdict.",
    )
    failed_check_penalty: float = Field(
        default=0.5,
        ge=0.0,
        description="Points subtracted per failed health check beyond the daily allowance.",
    )
    failed_check_allowance: int = Field(
        default=30,
        ge=0,
        description="Failed health checks per node per day forgiven before penalties apply.",
    )
    offender_fake_verdicts: int = Field(
        default=3,
        ge=1,
        description=(
            "Fake-model verdicts within offender_window_days that remove a node from the network "
            "for good and hide its operator from the leaderboard."
        ),
    )
    offender_window_days: float = Field(
        default=14.0,
        gt=0.0,
        description="Window, in days, over which fake-model verdicts are counted for removal.",
    )
    in_demand_models: frozenset[ModelId] | None = Field(
        default=None,
        description=(
            "Models counted as in demand. When unset, a model is in demand on a day if it "
            "carried at least in_demand_min_share of all tokens the network served that day."
        ),
    )
    in_demand_min_share: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description=(
            "Share of the day's network-wide served tokens a model needs to count as in demand "
            "(used when in_demand_models is unset; a model must have served some tokens)."
        ),
    )
    tiers: tuple[Tier, ...] = Field(
        default=DEFAULT_TIERS,
        min_length=1,
        description="Leaderboard tiers, lowest first; the lowest starts at 0 points.",
    )
    estimate_utilisation: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description=(
            "For the points estimator only: the fraction of a node's capacity real demand is "
            "expected to use, turning measured speed into expected tokens served."
        ),
    )

    @model_validator(mode="after")
    def _tiers_ascend(self) -> PointsConstants:
        if self.tiers[0].min_points != 0.0:
            raise ValueError("the lowest tier must start at 0 points")
        for lower, upper in zip(self.tiers, self.tiers[1:], strict=False):
            if upper.min_points <= lower.min_points:
                raise ValueError("tiers must be listed with strictly rising min_points")
        if len({tier.name for tier in self.tiers}) != len(self.tiers):
            raise ValueError("tier names must be unique")
        return self

    def tier_for(self, points: float) -> str:
        """Name of the highest tier whose threshold ``points`` reaches."""
        name = self.tiers[0].name
        for tier in self.tiers:
            if points >= tier.min_points:
                name = tier.name
        return name
