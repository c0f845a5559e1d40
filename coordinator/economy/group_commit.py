"""Group commit: many callers' small writes gathered into one database transaction.

Callers enqueue without awaiting the database; one writer task drains the queue in batches.
Batching is what lets one coordinator settle thousands of calls a second on two cores, and one
writer means no two of them wait on each other's database locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Generic, TypeVar

from coordinator.periodic import stop_if_cancelled

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class GroupCommit(Generic[Item]):
    def __init__(
        self, write: Callable[[list[Item]], Awaitable[None]], *, max_batch: int,
        linger_s: float, retry: Callable[[Item], bool], urgent: Callable[[Item], bool],
    ) -> None:
        """``write`` persists one batch. The items of a failed batch for which ``retry`` holds
        are written again later; the others are ``write``'s to resolve. The writer lingers
        ``linger_s`` to gather a batch, unless an ``urgent`` item (someone waiting on it) is
        queued."""
        self._write = write
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._retry = retry
        self._urgent = urgent
        self._queue: list[Item] = []
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, item: Item) -> None:
        self._queue.append(item)
        self._idle.clear()
        self._wake.set()
        if self._urgent(item):
            self._hurry.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain_forever())

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        # Idle is cleared from the first put until the writer has written everything, including
        # a batch already taken off the queue: waiting on the queue alone would cut it short.
        if not self._idle.is_set():
            self._wake.set()
            self._hurry.set()
            await self._idle.wait()

    async def close(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await self.flush()
        except TimeoutError:
            log.error("%d queued writes lost at shutdown", len(self._queue))
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _drain_forever(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._linger_s and len(self._queue) < 8 and not self._hurry.is_set():
                with suppress(TimeoutError):  # let a few more arrive
                    async with asyncio.timeout(self._linger_s):
                        await self._hurry.wait()
            self._hurry.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: len(batch)]
                try:
                    await self._write(batch)
                    failures = 0
                except Exception:
                    stop_if_cancelled()
                    log.exception("batched write of %d failed", len(batch))
                    again = [item for item in batch if self._retry(item)]
                    if again:
                        self._queue[:0] = again
                        failures += 1
                        await asyncio.sleep(min(5.0, 0.05 * 2**failures))
            self._idle.set()
