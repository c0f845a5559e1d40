"""One generation's events carried from the blocking thread that computes them to the event loop.

Both engines generate on threads of their own (llama.cpp one per slot, MLX one per engine) and
stream to an async consumer. A :class:`GenerationBridge` is the meeting point of the two sides:

- the thread runs its work inside :meth:`GenerationBridge.producing`, hands each event to
  :meth:`GenerationBridge.emit` and polls :attr:`GenerationBridge.cancelled` between tokens;
- the event loop iterates :meth:`GenerationBridge.events`, given the future that completes when
  the thread has returned.

Closing the events early (the consumer hung up or was cancelled) sets ``cancelled`` and then
waits for that future (:func:`outlive`, through any further cancellation), so whatever the
thread was using (a llama.cpp context, an MLX slot) is never handed to the next generation while
the thread still touches it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.engines.base import GenerationEvent
from agent.errors import EngineError, RequestRejected


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


T = TypeVar("T")

_Item = GenerationEvent | _Failed | None  # None: the thread has produced all it will


class GenerationBridge:
    """Carries one generation from a worker thread to the event loop that created the bridge.

    ``engine`` names the engine in the error an unexpected exception of the thread becomes.
    Create it on the event loop (it captures the running loop); use each side once.
    """

    def __init__(self, engine: str) -> None:
        self._engine = engine
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[_Item] = asyncio.Queue()
        self.cancelled = threading.Event()
        """Set once the consumer has stopped listening: the thread should return soon."""

    # --- the thread's side ----------------------------------------------------------------------

    def emit(self, event: GenerationEvent) -> None:
        """Hand one event to the consumer (thread-safe)."""
        self._put(event)

    @contextmanager
    def producing(self) -> Iterator[None]:
        """Wrap the thread's work: its failure reaches the consumer, and the stream always ends.

        A :class:`RequestRejected` or :class:`EngineError` is raised to the consumer as it is;
        any other exception as an :class:`EngineError` naming the engine.
        """
        try:
            yield
        except (RequestRejected, EngineError) as exc:
            self._put(_Failed(exc))
        except Exception as exc:  # engines surface their failures as assorted exceptions
            self._put(_Failed(EngineError(f"{self._engine} failed: {exc}")))
        finally:
            self._put(None)

    def _put(self, item: _Item) -> None:
        self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    # --- the event loop's side ------------------------------------------------------------------

    async def events(self, worker: asyncio.Future[Any]) -> AsyncGenerator[GenerationEvent, None]:
        """The thread's events until it ends; raises the error it failed with.

        ``worker`` completes when the thread has returned. However the iteration ends, this
        sets :attr:`cancelled` and waits for ``worker`` (shielded from a cancelled consumer)
        before it returns.
        """
        try:
            while True:
                item = await self._items.get()
                if item is None:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            self.cancelled.set()
            await outlive(worker)


async def outlive(worker: asyncio.Future[T]) -> T:
    """``worker``'s result (a thread's future), once it is done, however often this is cancelled
    meanwhile; a cancellation is raised afterwards. The thread cannot be stopped, so what it
    holds must not be released before it returns: a second cancel (a consumer gone during a
    shutdown) must not cut the wait short."""
    interrupted = False
    while not worker.done():
        try:
            await asyncio.wait({worker})
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError
    return worker.result()
