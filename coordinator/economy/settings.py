"""The economy's constants, part of the coordinator's settings (``KORETEX_ECONOMY__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MICRO = 1_000_000


class EconomySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    starter_credits: int = Field(
        default=10 * MICRO, ge=0, description="Micro-credits granted once to every new account."
    )
    provider_share_bps: int = Field(
        default=8000, ge=0, le=10_000, description="The serving nodes' share of each call."
    )
    bounty_pool_share_bps: int = Field(
        default=2500, ge=0, le=10_000,
        description="Share of the platform's part of each call that funds the bounty pool.",
    )
    bounty_multipliers: dict[str, float] = Field(
        default_factory=dict,
        description="Payout multiplier per under-supplied model (1.0 = no bounty).",
    )
    max_bounty_multiplier: float = Field(default=2.0, ge=1.0)
    flap_reduction: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Payout reduction right after a node switches model; decays to zero.",
    )
    flap_decay_hours: float = Field(default=72.0, gt=0)
    trust_start: float = Field(default=0.1, ge=0.0, le=1.0)
    trust_ramp_days: float = Field(default=14.0, gt=0)
    hold_ttl_s: float = Field(default=3600.0, gt=0)
    settle_batch_max: int = Field(default=256, ge=1)
    settle_batch_wait_s: float = Field(default=0.005, ge=0)
