"""Where a hung test is waiting: every asyncio task's stack, printed shortly before the timeout.

pytest-timeout dumps thread stacks, which for an asyncio test only shows the event loop idling
in ``select``. The coroutine that never finishes is one of the loop's tasks, so a watchdog
thread prints each running loop's tasks into the test's captured output first.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    return [o for o in gc.get_objects()
            if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]


def _report() -> str:
    out = io.StringIO()
    for loop in _running_loops():
        for _ in range(5):  # the loop thread may add a task while we copy the set
            try:
                tasks = list(asyncio.all_tasks(loop))
                break
            except RuntimeError:
                continue
        else:
            continue
        print(f"~~~ {len(tasks)} asyncio tasks on {loop!r} ~~~", file=out)
        for task in tasks:
            task.print_stack(limit=12, file=out)
    return out.getvalue()


@contextmanager
def report_hangs_after(seconds: float | None) -> Iterator[None]:
    """Print the asyncio task stacks if the body is still running after ``seconds``."""
    if not seconds or seconds <= 0:
        yield
        return

    def dump() -> None:
        sys.stdout.write(f"\n+++ still running after {seconds:.0f} s; asyncio tasks: +++\n")
        sys.stdout.write(_report())
        sys.stdout.flush()

    timer = threading.Timer(seconds, dump)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
