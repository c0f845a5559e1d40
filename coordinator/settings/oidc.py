"""Sign-in with an OpenID Connect provider (Google or any other): ``KORETEX_OIDC__*``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class OidcSettings(BaseModel):
    """Unset ``issuer`` disables OpenID sign-in; the page then offers wallets only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str | None = Field(
        default=None,
        description="The provider's issuer URL (https://accounts.google.com for Google); its "
        "/.well-known/openid-configuration names every endpoint.",
    )
    client_id: str = Field(default="", description="The OAuth client id registered for Koretex.")
    client_secret: str = Field(default="", description="The client secret (never logged).")
    provider_name: str = Field(default="Google", description="Shown on the sign-in button.")
    scopes: str = Field(default="openid email")
    flow_ttl_s: float = Field(
        default=600.0, gt=0, description="How long a sign-in may take at the provider."
    )
    http_timeout_s: float = Field(default=10.0, gt=0)

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)
