"""The economy's constants, part of the coordinator's settings (``KORETEX_ECONOMY__*``), and the
USDC top-up settings (``KORETEX_TOPUPS__*``)."""

from __future__ import annotations

from decimal import Decimal

import base58
from pydantic import BaseModel, ConfigDict, Field, field_validator

MICRO = 1_000_000


class BountySettings(BaseModel):
    """Computed bounties: how often and over what window demand is weighed against capacity
    (``KORETEX_ECONOMY__BOUNTIES__*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: float = Field(
        default=60.0, gt=0, description="How often the leader recomputes every model's bounty."
    )
    window_s: float = Field(
        default=900.0, gt=0, description="Demand is the tokens delivered over this last window."
    )
    target_utilisation: float = Field(
        default=0.7, gt=0, le=1.0,
        description="The share of live capacity the network should be busy at; demand above it"
        " raises a bounty, so supply grows before the network is saturated.",
    )
    refresh_s: float = Field(
        default=5.0, gt=0, description="How often each replica reads the current bounties."
    )
    tokens_per_refused_request: int = Field(
        default=200, ge=0,
        description="Demand a request refused for want of a node adds, for a model with no"
        " delivered call in the window to take the average from.",
    )
    refusals_per_account: int = Field(
        default=20, ge=0,
        description="Refused requests one account adds to the demand over the window (per"
        " replica): more from it are refused but raise no bounty.",
    )
    refusals_per_network: int = Field(
        default=60, ge=0,
        description="Refused requests one client network (IPv4 /24, IPv6 /64) adds to the"
        " demand over the window (per replica).",
    )


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
        description="Payout multiplier per model, fixed by the operator (1.0 = no bounty);"
        " models not named here get one computed from demand and live capacity.",
    )
    max_bounty_multiplier: float = Field(default=2.0, ge=1.0)
    bounties: BountySettings = Field(default_factory=BountySettings)
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
    credit_line_holds: int = Field(
        default=8, ge=0,
        description="A replica reserves credit for up to this many calls' holds at once per"
        " account (a credit line, at most half of what is spendable), so most calls hold"
        " their credit without a database write. 0 or 1: every call writes its own hold.",
    )
    credit_line_idle_s: float = Field(
        default=2.0, gt=0, description="An unused credit line goes back after this long."
    )
    credits_per_usdc: int = Field(
        default=MICRO, ge=1, description="Micro-credits a top-up grants per 1 USDC paid."
    )


MAINNET_RPC_URL = "https://api.mainnet-beta.solana.com"
MAINNET_USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


class TopupSettings(BaseModel):
    """Buying credits with USDC on Solana (Solana Pay transfer requests, watched by reference)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    treasury: str | None = Field(
        default=None,
        description="The wallet (owner address) USDC is paid to; unset, top-ups are disabled.",
    )
    usdc_mint: str = Field(default=MAINNET_USDC_MINT, description="The USDC mint to accept.")
    solana_rpc_url: str = Field(
        default=MAINNET_RPC_URL,
        description="A Solana JSON-RPC endpoint (may embed a provider key: never logged).",
    )
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    ttl_s: float = Field(default=1800.0, gt=0, description="How long an invoice may be paid.")
    grace_s: float = Field(
        default=300.0, ge=0,
        description="How long past its expiry an invoice is still watched, so a payment signed "
        "at the last moment still lands, finalizes and is credited.",
    )
    poll_interval_s: float = Field(default=10.0, gt=0)
    min_usdc: Decimal = Field(default=Decimal("0.01"), gt=0)
    max_usdc: Decimal = Field(default=Decimal("10000"), gt=0)
    max_pending_per_account: int = Field(default=5, ge=1)
    signatures_per_invoice: int = Field(
        default=10, ge=1, le=1000,
        description="Signatures asked for per RPC page; the watcher pages back until it reaches"
        " the transactions it already judged.",
    )

    @field_validator("treasury", "usdc_mint")
    @classmethod
    def _is_address(cls, value: str | None) -> str | None:
        if value is not None and not _is_base58_key(value):
            raise ValueError("must be a base58 Solana address (32 bytes)")
        return value


def _is_base58_key(text: str) -> bool:
    try:
        return len(text) <= 44 and len(base58.b58decode(text)) == 32
    except ValueError:
        return False
