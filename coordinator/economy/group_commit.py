"""Group commit: many callers' small writes gathered into one database transaction.

Callers enqueue without awaiting the database; one writer task drains the queue in batches.
Batching is what lets one coordinator settle thousands of calls a second on two cores, and one
writer means no two of them wait on each other's database locks.

One bad item must not stop everyone's writes: a batch refused for what it contains (a value out
of range, a constraint) is split in halves until the item at fault is alone, and that item is
rejected while the rest commit. A batch that failed for the database's own sake (a lost
connection, a lock timeout) is written again after a capped backoff, but no item is tried more
than ``max_attempts`` times: after that it is isolated and rejected like a bad one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

from coordinator.periodic import stop_if_cancelled

log = logging.getLogger(__name__)

Item = TypeVar("Item")


@dataclass(eq=False, slots=True)
class _Queued(Generic[Item]):
    item: Item
    attempts: int = 0


class GroupCommit(Generic[Item]):
    def __init__(
        self, write: Callable[[list[Item]], Awaitable[None]], *, max_batch: int,
        linger_s: float, retry: Callable[[Item], bool], urgent: Callable[[Item], bool],
        reject: Callable[[Item, Exception], None] | None = None,
        transient: Callable[[Exception], bool] = lambda exc: False,
        max_attempts: int = 8,
    ) -> None:
        """``write`` persists one batch, all or nothing. When it raises, a ``transient`` error
        has every item for which ``retry`` holds written again later (up to ``max_attempts``
        tries); any other error splits the batch until the failing item is alone. An item
        given up on is handed to ``reject`` with the error, which must answer anyone waiting on
        it. The writer lingers ``linger_s`` to gather a batch, unless an ``urgent`` item
        (someone waiting on it) is queued."""
        self._write = write
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._retry = retry
        self._urgent = urgent
        self._reject = reject
        self._transient = transient
        self._max_attempts = max_attempts
        self._queue: list[_Queued[Item]] = []
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self.rejected = 0
        """Items given up on since start (each was logged and handed to ``reject``)."""

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, item: Item) -> None:
        self._queue.append(_Queued(item))
        self._idle.clear()
        self._wake.set()
        if self._urgent(item):
            self._hurry.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain_forever())

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or rejected)."""
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
                again = await self._write_isolating(batch)
                if not again:
                    failures = 0
                    continue
                self._queue[:0] = again
                failures += 1
                await asyncio.sleep(min(5.0, 0.05 * 2**failures))
            self._idle.set()

    async def _write_isolating(self, batch: list[_Queued[Item]]) -> list[_Queued[Item]]:
        """Write ``batch``, splitting it around items the database refuses; what is returned
        failed for the database's own sake and is to be written again after a pause."""
        pending = [batch]
        again: list[_Queued[Item]] = []
        while pending:
            part = pending.pop()
            try:
                await self._write([queued.item for queued in part])
                continue
            except Exception as exc:
                stop_if_cancelled()
                error = exc
            for queued in part:
                queued.attempts += 1
            if self._transient(error):
                log.warning("batched write of %d failed, to be tried again: %r", len(part), error)
                for queued in part:
                    if not self._retry(queued.item):
                        self._give_up(queued, error)
                    elif queued.attempts < self._max_attempts:
                        again.append(queued)
                    elif len(part) == 1:
                        self._give_up(queued, error)
                    else:
                        again.append(queued)
                if len(part) > 1 and any(q.attempts >= self._max_attempts for q in part):
                    # Failing "transiently" that often: perhaps one of them after all.
                    again = [q for q in again if q not in part]
                    middle = len(part) // 2
                    pending.extend([part[middle:], part[:middle]])
                continue
            if len(part) == 1:
                self._give_up(part[0], error)
                continue
            log.warning("batched write of %d refused (%r): isolating the item at fault",
                        len(part), error)
            middle = len(part) // 2
            pending.extend([part[middle:], part[:middle]])  # the first half is written first
        # Keep the queue's order (what a settlement frees counts for the holds after it).
        order = {id(queued): n for n, queued in enumerate(batch)}
        return sorted(again, key=lambda queued: order[id(queued)])

    def _give_up(self, queued: _Queued[Item], error: Exception) -> None:
        self.rejected += 1
        log.error("ledger write rejected after %d attempt(s): %r: %r",
                  queued.attempts, queued.item, error)
        if self._reject is not None:
            try:
                self._reject(queued.item, error)
            except Exception:
                log.exception("could not answer the waiter of a rejected write")
