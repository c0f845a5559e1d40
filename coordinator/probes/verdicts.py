"""Where an authenticity verdict goes: a genuine one joins the batched points history; a fake one
is stored at once by the points keeper, which removes the node in the same transaction when it
reaches the offender threshold (not at the next rescoring of the history)."""

from __future__ import annotations

from coordinator.contributions import AuthenticityVerdict
from coordinator.probes.needs import ProbeNeeds


async def record_authenticity(services: ProbeNeeds, verdict: AuthenticityVerdict) -> bool:
    """Record ``verdict``; returns whether its node was removed from the network for it."""
    keeper = services.points
    if verdict.genuine:
        services.contributions.add(verdict)
        return False
    return await keeper.record_fake(verdict)
