"""Cloud-node settings (``KORETEX_CLOUD__*``): the master key and the upstream timeouts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class CloudSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    master_key: SecretStr | None = Field(
        default=None,
        description="32 random bytes (base64 or 64 hex digits) that seal every stored upstream"
        " token. Without it no cloud node can be added, and a coordinator with cloud nodes"
        " stored refuses to start. Rotate with `koretex-coordinator keys rotate-master`.",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds to open a connection to an upstream."
    )
    first_byte_timeout_s: float = Field(
        default=60.0, gt=0,
        description="Seconds an upstream may take to answer a job (its response headers).",
    )
    read_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds an upstream may fall silent mid-stream."
    )
    check_timeout_s: float = Field(
        default=60.0, gt=0,
        description="Seconds the test completion may take when a cloud node is added or changed.",
    )
    reconfigure_grace_s: float = Field(
        default=300.0, ge=0,
        description="How long answers already streaming may run on a cloud node's old settings"
        " after its operator changes them.",
    )
    allow_private_upstreams: bool = Field(
        default=False,
        description="Let cloud nodes point at loopback, private and link-local addresses (a"
        " private cluster, tests). Off, an upstream must be reached at a public address.",
    )
    max_concurrency: int = Field(
        default=64, ge=1, le=256, description="The most concurrent jobs one cloud node may declare."
    )
