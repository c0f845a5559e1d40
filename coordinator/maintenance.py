"""Background upkeep: time-driven routing rules, online time, and saving health windows."""

from __future__ import annotations

import itertools
import logging

from coordinator.periodic import every
from coordinator.services import Services
from coordinator.store.health import save_health

log = logging.getLogger(__name__)


async def run_upkeep(services: Services, interval_s: float = 30.0, save_every: int = 2) -> None:
    """Forever: refresh ramp-up and health ageing, credit online time, save health windows."""
    ticks = itertools.count(1)

    async def upkeep() -> None:
        tick = next(ticks)
        clock, router = services.clock, services.router
        wall_now = clock.now().timestamp()
        live = [node.node_id for node in services.hub.nodes()]
        services.points.credit_online()  # to the routing health window and to the history
        router.refresh(now=clock.monotonic(), wall_now=wall_now)
        if tick % save_every == 0:
            await save_health(services.database, router, live, wall_now=wall_now)

    await every(interval_s, upkeep, log, "keep node health and online time", wait_first=True)


async def release_stale_holds(services: Services, interval_s: float) -> None:
    """Forever (on one replica): release credit holds whose calls never settled, e.g. because
    the replica serving them died."""
    async def release() -> None:
        released = await services.ledger.release_expired()
        if released:
            log.info("released %d stale credit hold(s)", released)

    await every(interval_s, release, log, "release stale holds")
