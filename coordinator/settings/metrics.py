"""Who may scrape ``GET /metrics`` (``KORETEX_METRICS__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class MetricsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr | None = Field(
        default=None,
        description="The bearer token a scraper must send (`Authorization: Bearer …`). Unset:"
        " metrics are served only to loopback peers that no proxy forwarded.",
    )
