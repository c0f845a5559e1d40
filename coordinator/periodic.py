"""Loops that run forever and survive their own failures, yet always stop when cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


def stop_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop.

    Call it where a forever-loop catches errors: a client library may turn the cancellation that
    reaches it into an ordinary error (the Redis client converts it while disconnecting, and
    retries), which the loop would log and go on from. The request stays counted on the task
    (``Task.cancelling``), so the loop can still honour it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def every(
    interval_s: float, step: Callable[[], Awaitable[object]], log: logging.Logger, what: str,
    *, wait_first: bool = False,
) -> None:
    """Forever: run ``step``, then wait ``interval_s`` (or wait first, for a step already run
    at start). A failed step is logged ("could not <what>") and tried again next time; only
    cancellation stops the loop."""
    if wait_first:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await step()
        except Exception:
            stop_if_cancelled()
            log.exception("could not %s", what)
        await asyncio.sleep(interval_s)
