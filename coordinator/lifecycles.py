"""The points keeper and the probe scheduler, running for the app's lifetime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from coordinator.probes.scheduler import ProbeScheduler
from coordinator.services import SERVICES

log = logging.getLogger(__name__)

PROBE_SCHEDULER = web.AppKey("probe_scheduler", ProbeScheduler)


async def points_running(app: web.Application) -> AsyncIterator[None]:
    """The keeper, the probe scheduler and their loops, for the app's lifetime (after
    ``lifecycle``: they need Services and the database)."""
    services = app[SERVICES]
    keeper = services.points
    await keeper.refresh()  # restores the refusals before any node reconnects
    tasks = [
        asyncio.create_task(keeper.run_flushes()),
        asyncio.create_task(keeper.run_refreshes()),
    ]
    scheduler = ProbeScheduler(services)
    app[PROBE_SCHEDULER] = scheduler
    if services.settings.probes.enabled:
        tasks.append(asyncio.create_task(scheduler.run()))
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await scheduler.close()
    try:
        keeper.credit_online()
        await keeper.flush(everything=True)
    except Exception:
        log.exception("could not append the last contributions")
