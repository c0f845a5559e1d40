"""The load ``bench/gateway_vs_peers.py`` puts on each server, and what it times of each answer.

Workers send streaming chat requests one after another for a fixed wall time; aiohttp reads the
SSE lines raw, so the client is never the bottleneck.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
from gateway_vs_peers_targets import Target
from gateway_vs_peers_upstream import MODEL, TOKENS


@dataclass
class Cell:
    requests: int = 0
    errors: int = 0
    ttft: list[float] = field(default_factory=list)
    per_token: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0


async def one_request(http: aiohttp.ClientSession, target: Target, cell: Cell | None) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "go"}],
            "max_tokens": TOKENS, "stream": True}
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    async with http.post(f"{target.base_url}/v1/chat/completions", json=body,
                         headers={"Authorization": f"Bearer {target.key}"}) as response:
        if response.status != 200:
            await response.read()
            if cell is not None:
                cell.errors += 1
            return
        async for line in response.content:
            if not line.startswith(b"data: {"):
                continue
            compact = line.replace(b'": ', b'":')
            if b'"content":' not in compact or b'"content":""' in compact:
                continue
            now = time.perf_counter()
            if tokens == 0:
                first = now
            last = now
            tokens += 1
    if cell is not None and tokens:
        cell.requests += 1
        cell.ttft.append(first - started)
        if tokens > 1:
            cell.per_token.append((last - first) / (tokens - 1))


async def run_cell(target: Target, concurrency: int, cell_s: float, warm_s: float) -> Cell:
    """``concurrency`` workers for ``warm_s`` unrecorded, then for ``cell_s`` recorded."""
    cell = Cell()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        warm_until = time.perf_counter() + warm_s

        async def worker(record: bool, until: float) -> None:
            while time.perf_counter() < until:
                try:
                    await one_request(http, target, cell if record else None)
                except (aiohttp.ClientError, TimeoutError):
                    cell.errors += 1

        await asyncio.gather(*(worker(False, warm_until) for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(True, started + cell_s) for _ in range(concurrency)))
        cell.elapsed = time.perf_counter() - started
    return cell
