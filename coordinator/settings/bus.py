"""Settings for running several replicas on one Redis (``KORETEX_BUS__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BusSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = Field(
        default="koretex", pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of every Redis key; replicas of one network share it.",
    )
    replica_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]+$",
        description="This replica's name on the bus. Default: host name, pid and a random tag.",
    )
    presence_ttl_s: float = Field(
        default=6.0, gt=0,
        description="Lease on a replica's presence; a replica silent this long is gone, and its"
        " nodes with it. Renewed every third of it.",
    )
    presence_poll_s: float = Field(
        default=0.25, gt=0, description="How often a replica reads the others' presence."
    )
    publish_spacing_s: float = Field(
        default=0.05, ge=0, description="Least time between two presence publications."
    )
    job_lease_s: float = Field(
        default=6.0, gt=0,
        description="Lease a replica holds on each job it sent to another; a job whose lease"
        " lapses (its consumer's replica died) is cancelled on its node.",
    )
    leader_lease_s: float = Field(
        default=10.0, gt=0,
        description="Lease of a periodic job's leader; a dead leader is replaced within it.",
    )
    stream_max_len: int = Field(
        default=100_000, ge=1000, description="Approximate bound of each replica's inbox stream."
    )
    socket_timeout_s: float = Field(
        default=5.0, gt=1.0,
        description="Longest wait for any Redis reply (above the inbox's 1 s blocking read), so a"
        " half-open connection fails instead of hanging.",
    )
    connect_timeout_s: float = Field(default=2.0, gt=0, description="Longest Redis connect.")
    max_connections: int = Field(
        default=64, ge=4,
        description="Redis connections per replica. A burst of requests waits for a free one"
        " (at most the socket timeout) instead of opening a connection per request.",
    )
