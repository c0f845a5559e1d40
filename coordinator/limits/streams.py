"""Concurrent streams per API key: a counter per key, entered and left around each completion."""

from __future__ import annotations

from typing import Protocol


class StreamGate(Protocol):
    """Counts streams in flight per key (per replica in memory; shared if backed by Redis)."""

    unchecked: int
    """Streams admitted without a decision (the store was unreachable)."""

    async def enter(self, key: str, limit: int) -> bool:
        """Take a slot for ``key`` if fewer than ``limit`` are taken; False: refused."""
        ...

    async def leave(self, key: str) -> None:
        """Give back a slot taken by :meth:`enter`."""
        ...


class InMemoryStreams:
    def __init__(self) -> None:
        self.unchecked = 0  # memory always answers
        self._open: dict[str, int] = {}

    async def enter(self, key: str, limit: int) -> bool:
        current = self._open.get(key, 0)
        if current >= limit:
            return False
        self._open[key] = current + 1
        return True

    async def leave(self, key: str) -> None:
        current = self._open.get(key, 0) - 1
        if current > 0:
            self._open[key] = current
        else:
            self._open.pop(key, None)

    def open_streams(self, key: str) -> int:
        return self._open.get(key, 0)
