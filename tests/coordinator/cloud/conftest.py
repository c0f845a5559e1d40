"""A real upstream for cloud-node tests, and coordinators that hold a master key."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support.cloud_nodes import CloudNetwork
from support.upstream import LlamaServer

from coordinator.cloud.sealing import new_master_key


@pytest.fixture(scope="module")
def upstream_token() -> str:
    return "sk-upstream-" + secrets.token_urlsafe(24)


@pytest.fixture
def master_key() -> str:
    return new_master_key()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def upstream(
    gemma_path: Path, upstream_token: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LlamaServer]:
    """One llama-cpp-python server for the module (tests that kill theirs start their own)."""
    server = LlamaServer(gemma_path, upstream_token, tmp_path_factory.mktemp("upstream"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def cloud(tmp_path: Path, database_url: str, master_key: str) -> AsyncIterator[CloudNetwork]:
    """Coordinators (``cloud.start()``) and scripted nodes, stopped when the test ends."""
    network = CloudNetwork(tmp_path, database_url, master_key)
    try:
        yield network
    finally:
        await network.stop()
