"""A generation's thread is outlived: however its consumer stops, even cancelled twice, the
events end only once the thread has returned (what it holds is never handed on while in use)."""

from __future__ import annotations

import asyncio
import threading
from contextlib import aclosing

import pytest

from agent.engines.base import GeneratedToken
from agent.engines.thread_bridge import GenerationBridge


async def test_a_consumer_cancelled_twice_still_waits_for_the_thread() -> None:
    bridge = GenerationBridge("test")
    release, returned = threading.Event(), threading.Event()

    def generate() -> None:
        with bridge.producing():
            bridge.emit(GeneratedToken("a"))
            release.wait(30)  # a token in progress: the thread cannot be interrupted
        returned.set()

    worker = asyncio.get_running_loop().run_in_executor(None, generate)
    first_token = asyncio.Event()

    async def consume() -> None:
        async with aclosing(bridge.events(worker)) as events:
            async for _ in events:
                first_token.set()
                await asyncio.Event().wait()  # the consumer stalls until it is cancelled

    consumer = asyncio.create_task(consume())
    await first_token.wait()
    for _ in range(2):  # e.g. the consumer hangs up, then the agent shuts down
        consumer.cancel()
        await asyncio.sleep(0.05)
        assert not consumer.done(), "the events ended while the thread was still running"
    assert bridge.cancelled.is_set()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert returned.is_set()


async def test_the_threads_failure_reaches_the_consumer_as_an_engine_error() -> None:
    bridge = GenerationBridge("test")

    def generate() -> None:
        with bridge.producing():
            raise RuntimeError("out of memory")

    worker = asyncio.get_running_loop().run_in_executor(None, generate)
    with pytest.raises(Exception, match="test failed: out of memory"):
        async with aclosing(bridge.events(worker)) as events:
            async for _ in events:
                pass
