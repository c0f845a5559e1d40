"""Time as a dependency, so rules that span days are tested without waiting."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class ShiftedClock:
    """The system clock moved forward by an adjustable offset (for simulated days in tests)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def monotonic(self) -> float:
        return time.monotonic() + self.offset.total_seconds()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset
