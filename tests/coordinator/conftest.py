"""Tests that run several replicas (bus, shared limits) need the shared servers: a fresh PostgreSQL
database and Redis (fail without). Substitute models (for the exam and the probes) are built once
per session under a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support import required
from support.databases import drop_database, fresh_database
from support.substitutes import build_tiny_model, requantize


@pytest_asyncio.fixture
async def shared_database(tmp_path: Path) -> AsyncIterator[str]:
    required.service_url("KORETEX_TEST_POSTGRES_URL", "PostgreSQL")
    required.service_url("KORETEX_TEST_REDIS_URL", "Redis")
    url = await fresh_database("postgres", tmp_path / "db")
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
def substitutes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("substitutes")


@pytest.fixture(scope="session")
def requantized_path(gemma_path: Path, substitutes_dir: Path) -> Path:
    """Gemma 3 270M re-quantized from Q4_K_M to the cruder Q4_0."""
    return requantize(gemma_path, substitutes_dir / "gemma-3-270m-q4_0.gguf")


@pytest.fixture(scope="session")
def tiny_path(gemma_path: Path, substitutes_dir: Path) -> Path:
    """A 2-layer random llama speaking Gemma's tokenizer."""
    return build_tiny_model(gemma_path, substitutes_dir / "tiny-stand-in.gguf")


@pytest.fixture(scope="session")
def smollm2_requantized_path(smollm2_path: Path, substitutes_dir: Path) -> Path:
    """SmolLM2 135M Instruct re-quantized from Q4_1 to the cruder Q4_0."""
    return requantize(smollm2_path, substitutes_dir / "smollm2-135m-instruct-q4_0.gguf")
