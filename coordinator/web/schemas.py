"""Bodies of the dashboard's public JSON (the source of their OpenAPI description)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NetworkPricing(BaseModel):
    """``GET /v1/network/pricing``: what a credit costs and what a new account starts with."""

    model_config = ConfigDict(frozen=True)

    usd_per_credit: float
    credits_per_usdc: float
    starter_credits: float = Field(description="Credits every new account starts with.")
    provider_share: float = Field(description="Share of each charge paid to the node, 0 to 1.")
