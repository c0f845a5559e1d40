"""What a hostile node can make the coordinator hold: its RSS while a node tries to push 1 GB.

Run from the repository root: ``python bench/hostile_node.py`` (``--quick``: 64 MB, seconds).

A real coordinator runs in this process on SQLite; an honest scripted node serves a consumer's
stream the whole time, and a hostile node (speaking the real protocol from this process) tries to
push ``TARGET_BYTES`` of text in two ways, each given half:
  (a) ``unpaid``: megabyte deltas that claim no tokens. The coordinator closes the node at the
      first one (1008); the hostile node comes back under a fresh key and tries again, until its
      half is spent.
  (b) ``within bounds``: deltas that keep every bound (64 bytes per token, an entry per token)
      sent as fast as the socket takes them, for jobs whose consumers read nothing: each job's
      channel holds 256 events before the coordinator stops reading that node's socket, and no
      job carries more than its max_tokens (4000) tokens, 256 KB, so the node moves on to job
      after job under fresh identities.
The RSS of this process is sampled all along; its growth over the baseline taken after the
coordinator and the honest stream warmed up is the figure. The honest stream's longest gap
between tokens shows whether other consumers kept flowing.

Target: RSS grows by less than 50 MB while a node tries to push 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import harness  # the repository on the path
import nacl.signing
import psutil
from rich.console import Console
from rich.table import Table
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for

from coordinator.routing import RoutingConstants
from protocol.ids import ModelId
from protocol.messages import Challenge, Hardware, Job, ModelOffer, decode_coordinator_message
from protocol.messages import encode as encode_message
from protocol.session import AgentSession, Offer

MODEL = "smollm2-135m-instruct"
TARGET_BYTES = 1 << 30
TARGET_GROWTH_MB = 50.0
UNPAID_FRAME = "x" * 900_000  # under the 1 MiB frame limit: judged by the protocol's bounds
JOB_WAIT_S = 3.0
MAX_TOKENS = 4000  # within the 4096 tokens of context the nodes offer
TOKENS_PER_DELTA = 64  # each of 64 bytes: the most text a token may carry
PIECE = "y" * 64
UNPAID = {"type": "delta", "text": UNPAID_FRAME, "tokens": 0}
BOUNDED = {"type": "delta", "text": PIECE * TOKENS_PER_DELTA, "tokens": TOKENS_PER_DELTA,
           "logprobs": [{"token_id": 1, "token": PIECE, "logprob": -0.1}] * TOKENS_PER_DELTA}


class Memory:
    """This process's RSS, sampled in the background."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.baseline = self.peak = self._process.memory_info().rss

    def reset(self) -> None:
        self.baseline = self.peak = self._process.memory_info().rss

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 1e6


async def hostile_connection(
    coordinator: RunningCoordinator, http: aiohttp.ClientSession
) -> aiohttp.ClientWebSocketResponse:
    """A fresh identity, registered; the caller owns the socket."""
    offer = Offer(
        agent_version="hostile", engine="scripted",
        models=(ModelOffer(model=ModelId(MODEL), context_length=4096),), slots=1,
        hardware=Hardware(system="Linux", machine="x86_64", chip="x", cores=1, memory_bytes=1),
    )
    session = AgentSession(nacl.signing.SigningKey.generate(), offer)
    ws = await http.ws_connect(f"{coordinator.base_url}/v1/nodes/connect", max_msg_size=0)
    challenge = decode_coordinator_message((await ws.receive(timeout=10)).data)
    assert isinstance(challenge, Challenge)
    await ws.send_str(encode_message(session.answer(challenge, datetime.now(UTC))))
    assert '"registered"' in (await ws.receive(timeout=10)).data
    return ws


async def next_job(ws: aiohttp.ClientWebSocketResponse) -> Job | None:
    """The node's first job, or None when the call went to the honest node instead."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(JOB_WAIT_S):
            while True:
                message = decode_coordinator_message((await ws.receive()).data)
                if isinstance(message, Job):
                    return message
    return None


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the coordinator closes the connection; its close code."""
    async for _ in ws:
        pass
    return ws.close_code


async def consumer_call(
    http: aiohttp.ClientSession, coordinator: RunningCoordinator, api_key: str
) -> aiohttp.ClientResponse:
    """A streamed call whose body is never read: its job's events have nowhere to go."""
    return await http.post(
        f"{coordinator.base_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
              "max_tokens": MAX_TOKENS, "stream": True},
    )


async def close_call(call: asyncio.Task[aiohttp.ClientResponse]) -> None:
    if not call.done():
        call.cancel()
    with contextlib.suppress(BaseException):
        (await call).close()


async def push(
    coordinator: RunningCoordinator, api_key: str, budget: int, delta: dict[str, object],
    per_job: int,
) -> tuple[int, int]:
    """(bytes sent, connections the coordinator closed): job after job, each under a fresh
    identity, ``delta`` sent until the job has ``per_job`` bytes or the coordinator closes it."""
    sent = closed = 0
    async with aiohttp.ClientSession() as http, aiohttp.ClientSession() as consumers:
        while sent < budget:
            ws = await hostile_connection(coordinator, http)
            call = asyncio.create_task(consumer_call(consumers, coordinator, api_key))
            try:
                job = await next_job(ws)
                if job is None:
                    continue
                frame = json.dumps({**delta, "job_id": job.job_id})
                size = len(str(delta["text"]))
                in_job = 0
                reading = asyncio.create_task(until_closed(ws))  # sees the coordinator's close
                with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                    while sent < budget and in_job < per_job and not reading.done():
                        await ws.send_str(frame)
                        sent, in_job = sent + size, in_job + size
                        await asyncio.sleep(0)
                if in_job < per_job:  # cut off before its job was spent
                    with contextlib.suppress(TimeoutError):
                        closed += await asyncio.wait_for(reading, 5) is not None
                reading.cancel()
            finally:
                await ws.close()
                await close_call(call)
    return sent, closed


async def honest_stream(coordinator: RunningCoordinator, gaps: list[float],
                        stop: asyncio.Event) -> int:
    """Stream from the honest node, call after call, until told to stop; the tokens seen."""
    client = await coordinator.client("honest-consumer")
    tokens = 0
    while not stop.is_set():
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=40,
            stream=True,
        )
        last = time.perf_counter()
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                now = time.perf_counter()
                gaps.append(now - last)
                last, tokens = now, tokens + 1
    await client.close()
    return tokens


async def run(budget: int, directory: Path) -> dict[str, float]:
    coordinator = await start_coordinator(
        directory / "coordinator", routing=RoutingConstants(ramp_start_fraction=1.0),
        # Abandoned calls hold their stream slot until their job ends: the attack's own many.
        limits={"concurrent_streams_per_key": 100_000, "requests_per_minute_per_key": 100_000,
                "new_nodes_per_minute_per_network": 100_000},
    )
    honest = AgentProcess.scripted(coordinator, directory / "honest", "--delay", "0.02",
                                   "--slots", "1")
    memory = Memory()
    stop_watch, stop_honest = asyncio.Event(), asyncio.Event()
    try:
        await honest.start()
        api_key = await coordinator.api_key("hostile-consumer", starter_credits=10**12)
        gaps: list[float] = []
        streaming = asyncio.create_task(honest_stream(coordinator, gaps, stop_honest))
        await wait_for(lambda: len(gaps) > 20, 30, "the honest stream flowing")
        memory.reset()
        watching = asyncio.create_task(memory.watch(stop_watch))
        unpaid, closed = await push(coordinator, api_key, budget // 2, UNPAID, budget)
        started = time.perf_counter()
        whole_deltas = MAX_TOKENS // TOKENS_PER_DELTA * TOKENS_PER_DELTA * len(PIECE)
        bounded, _ = await push(coordinator, api_key, budget // 2, BOUNDED, whole_deltas)
        seconds = time.perf_counter() - started
        stop_watch.set()
        await watching
        stop_honest.set()
        tokens = await asyncio.wait_for(streaming, 60)
        return {
            "unpaid_mb": unpaid / 1e6, "closed": closed, "bounded_mb": bounded / 1e6,
            "bounded_s": seconds, "growth_mb": memory.growth_mb,
            "honest_tokens": tokens, "honest_max_gap_s": max(gaps),
        }
    finally:
        await honest.stop()
        await coordinator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.quick_flag(parser)
    args = parser.parse_args()
    budget = 64 << 20 if args.quick else TARGET_BYTES
    with tempfile.TemporaryDirectory(prefix="koretex-hostile-") as scratch:
        figures = asyncio.run(run(budget, Path(scratch)))
    table = Table(title=f"A hostile node pushing {budget >> 20} MB at the coordinator")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("unpaid text sent (zero-token megabyte deltas)", f"{figures['unpaid_mb']:.0f} MB")
    table.add_row("  connections the coordinator closed", f"{figures['closed']:.0f}")
    table.add_row("text within bounds sent to a consumer reading nothing",
                  f"{figures['bounded_mb']:.1f} MB in {figures['bounded_s']:.1f} s")
    table.add_row("coordinator RSS growth (peak - baseline)", f"{figures['growth_mb']:.1f} MB")
    table.add_row("honest stream: tokens / longest gap",
                  f"{figures['honest_tokens']:.0f} / {figures['honest_max_gap_s'] * 1000:.0f} ms")
    Console().print(table)
    growth = figures["growth_mb"]
    harness.report(
        "hostile_node", f"RSS grows < {TARGET_GROWTH_MB:.0f} MB while a node pushes 1 GB",
        f"{growth:.1f} MB", growth < TARGET_GROWTH_MB, quick=args.quick,
    )


if __name__ == "__main__":
    main()
