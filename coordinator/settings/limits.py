"""Limit settings (``KORETEX_LIMITS__*``): safe defaults for a public gateway."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LimitSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_minute_per_key: int = Field(
        default=1200, ge=1, description="Gateway requests an API key may make per minute."
    )
    concurrent_streams_per_key: int = Field(
        default=64, ge=1, description="Completions one API key may have in flight at once."
    )
    auth_requests_per_minute_per_ip: int = Field(
        default=60, ge=1,
        description="Sign-in, key, enrollment-token, wallet-link and cloud-node (add, change)"
        " requests per client network (IPv4 /24, IPv6 /64) per minute.",
    )
    starter_grants_per_day_per_network: int = Field(
        default=5, ge=1,
        description="New accounts a day from one client network (IPv4 /24, IPv6 /64) that get"
        " the starter credits; later ones open with none.",
    )
    keys_per_day_per_account: int = Field(
        default=50, ge=1, description="API keys one account may create per day.",
    )
    new_nodes_per_minute_per_network: int = Field(
        default=60, ge=1,
        description="Node identities never seen before that may register from one client network"
        " (IPv4 /24, IPv6 /64) per minute; known nodes reconnect freely.",
    )
    auth_path_prefixes: tuple[str, ...] = Field(
        default=("/v1/auth/", "/auth/"),
        description="Every route under these prefixes is limited per IP (wallet and OIDC sign-in).",
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses or CIDR networks whose X-Forwarded-For is believed (the nginx in"
        " front, e.g. [\"127.0.0.1\"]); from anyone else the header is ignored.",
    )
