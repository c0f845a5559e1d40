"""The coordinator's settings: one typed object, loaded once from ``KORETEX_*`` variables.

Each part has its own module here (``economy``, ``limits``, ``points``...), so any package can
import the part it is given without importing the others: configuration is the ground floor.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from coordinator.paths import default_database_url
from coordinator.routing import RoutingConstants
from coordinator.settings.authenticity import AuthenticitySettings
from coordinator.settings.bus import BusSettings
from coordinator.settings.cloud import CloudSettings
from coordinator.settings.economy import EconomySettings, TopupSettings
from coordinator.settings.identity import IdentitySettings
from coordinator.settings.limits import LimitSettings
from coordinator.settings.metrics import MetricsSettings
from coordinator.settings.oidc import OidcSettings
from coordinator.settings.points import PointsSettings
from coordinator.settings.probes import ProbeSettings


class CoordinatorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KORETEX_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8420, ge=0, le=65535)
    domain: str = Field(
        default="localhost",
        description="The public domain nodes and wallets sign for; never taken from a request.",
    )
    database_url: str = Field(default_factory=default_database_url)
    public_url: str | None = Field(
        default=None,
        description="The URL operators and nodes reach this coordinator at (e.g."
        " https://koretex.example); install commands name it. Default: http://{host}:{port}.",
    )
    enrollment_ttl_s: float = Field(
        default=3600.0, gt=0, description="How long a node enrollment token may be redeemed."
    )

    redis_url: str | None = Field(
        default=None,
        description="Redis shared by the replicas (redis://host:port/db). Unset: one replica,"
        " with an in-process bus.",
    )
    bus: BusSettings = Field(default_factory=BusSettings)
    routing: RoutingConstants = Field(default_factory=RoutingConstants)
    economy: EconomySettings = Field(default_factory=EconomySettings)
    topups: TopupSettings = Field(default_factory=TopupSettings)
    probes: ProbeSettings = Field(default_factory=ProbeSettings)
    points: PointsSettings = Field(default_factory=PointsSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    cloud: CloudSettings = Field(default_factory=CloudSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    access_log: bool = Field(
        default=False,
        description="Log every HTTP request (off: nginx in front logs them, and a line per"
        " request costs the gateway's hot path).",
    )
    shutdown_grace_s: float = Field(
        default=10.0, gt=0,
        description="How long a stopping coordinator lets requests in flight finish (a client"
        " that never finishes sending its body must not hold a restart).",
    )
    authenticity: AuthenticitySettings = Field(default_factory=AuthenticitySettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    session_ttl_s: float = Field(default=7 * 86_400, gt=0)
    signin_nonce_ttl_s: float = Field(default=300, gt=0)
    siws_uri: str = Field(
        default="http://localhost",
        description="The URI wallets sign in to (the dashboard's origin, e.g. https://koretex.example);"
        " a Sign-In With Solana message for any other URI is refused. Set it with the domain.",
    )
    siws_chain_id: str = Field(
        default="solana:mainnet", description="The Chain ID a sign-in message must name."
    )
    siws_statement: str = Field(
        default="Sign in to Koretex. This request costs nothing and does not touch your funds.",
        pattern=r"^[^\n]*$",
        description="The one-line statement wallets show above the sign-in fields.",
    )
    siws_clock_skew_s: float = Field(
        default=60.0, ge=0, description="How far in the future a message's Issued At may be."
    )
    node_clock_skew_s: float = Field(default=300.0, gt=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    heartbeat_timeout_s: float = Field(
        default=10.0, gt=0, description="A node silent this long after a ping is gone."
    )
    first_token_timeout_s: float = Field(default=30.0, gt=0)
    inter_token_timeout_s: float = Field(default=15.0, gt=0)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    max_frame_bytes: int = Field(default=1_048_576, ge=1024)
    max_messages: int = Field(default=256, ge=1)
    responses_retention_days: float = Field(
        default=30.0, gt=0,
        description="How long a Responses API answer stored with store: true is kept.",
    )
    max_tokens_limit: int = Field(default=8192, ge=1)
    default_max_tokens: int = Field(default=512, ge=1)
    job_top_logprobs: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Alternatives per token every job asks the node for (paid and probes alike),"
        " so authenticity checks see the same evidence everywhere; consumers get what they asked.",
    )
    upkeep_interval_s: float = Field(default=30.0, gt=0)
    catalogue_refresh_s: float = Field(
        default=5.0, gt=0,
        description="How often the catalogue is reloaded from the database (models added, "
        "removed or repriced with koretex-coordinator models take effect within it).",
    )
    queue_length: int = Field(default=64, ge=0, description="Requests that may wait per model.")
    queue_wait_s: float = Field(default=10.0, ge=0, description="How long a request waits.")
    no_capacity_retry_after_s: int = Field(default=5, ge=1)

    @property
    def public_base_url(self) -> str:
        """Where this coordinator is reached from outside, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
