"""A step repeated forever at an interval, surviving its own failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def every(
    interval_s: float, step: Callable[[], Awaitable[object]], log: logging.Logger, what: str
) -> None:
    """Forever: run ``step``, then wait ``interval_s``. A failed step is logged ("could not
    <what>") and tried again next time; only cancellation stops the loop."""
    while True:
        try:
            await step()
        except Exception:
            log.exception("could not %s", what)
        await asyncio.sleep(interval_s)
