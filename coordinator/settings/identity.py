"""Settings of what a node identity costs (see :mod:`coordinator.accounts.identity`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IdentitySettings(BaseModel):
    """``KORETEX_IDENTITY__*``: who may take paid jobs, and how fast operators gain nodes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paid_requires_enrollment: bool = Field(
        default=True,
        description="Paid jobs only for nodes enrolled to a signed-in operator's account; an"
        " unenrolled node is still probed (so its operator sees its speed), never paid.",
    )
    new_nodes_per_day_per_operator: int = Field(
        default=10, ge=0,
        description="New node identities one account may enroll in 24 hours.",
    )
