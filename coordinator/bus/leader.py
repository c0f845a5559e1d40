"""Periodic jobs that must run exactly once across replicas: run them under a leader lease.

:func:`run_as_leader` loops forever: it takes the named lease when it is free, runs the job while
renewing the lease every third of its length, and stops the job the moment a renewal fails (or
cannot reach the bus), before the lease can lapse and another replica take it. A leader that
dies simply stops renewing: another replica takes over within one lease. Each term carries a
fencing epoch (strictly increasing per name, in :data:`leader_epoch`) that a job can write beside
its effects to refuse a stale leader's late writes.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from coordinator.bus.base import Bus
from coordinator.periodic import stop_if_cancelled

log = logging.getLogger(__name__)

leader_epoch: contextvars.ContextVar[int] = contextvars.ContextVar("leader_epoch")
"""The fencing epoch of the term the current periodic job runs under."""

JobFactory = Callable[[], Coroutine[Any, Any, None]]


async def run_as_leader(
    bus: Bus, name: str, job: JobFactory, *, lease_s: float, retry_after_s: float = 1.0
) -> None:
    """Run ``job()`` on exactly one replica at a time, forever (cancel to stop)."""
    while True:
        stop_if_cancelled()
        try:
            epoch = await bus.acquire_lease(name, lease_s)
        except Exception:
            stop_if_cancelled()
            log.exception("leader %s: lease not reachable", name)
            epoch = None
        if epoch is None:
            await asyncio.sleep(min(lease_s / 3, retry_after_s))
            continue
        log.info("leading %s (epoch %d)", name, epoch)
        bus.leading.add(name)
        context = contextvars.copy_context()
        context.run(leader_epoch.set, epoch)
        task = asyncio.create_task(job(), name=f"leader-{name}", context=context)
        try:
            await _hold(bus, name, epoch, task, lease_s)
        finally:
            bus.leading.discard(name)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            try:
                async with asyncio.timeout(lease_s / 3):
                    await asyncio.shield(bus.release_lease(name, epoch))
            except Exception:  # a stop already under way goes on after this finally
                log.debug("leader %s: lease not released; it lapses", name, exc_info=True)
        await asyncio.sleep(retry_after_s)


async def _hold(bus: Bus, name: str, epoch: int, task: asyncio.Task[None], lease_s: float) -> None:
    while True:
        stop_if_cancelled()
        done, _ = await asyncio.wait({task}, timeout=lease_s / 3)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.error("leader %s: job failed", name, exc_info=task.exception())
            return
        try:
            async with asyncio.timeout(lease_s / 3):
                held = await bus.renew_lease(name, epoch, lease_s)
        except Exception:
            stop_if_cancelled()
            log.exception("leader %s: lease not renewed", name)
            held = False
        if not held:
            log.warning("leader %s: lease lost (epoch %d); stopping", name, epoch)
            return
