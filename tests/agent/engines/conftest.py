"""The engines the engine tests run, one per test module that asks (each loads its own).

``colours`` answers on whichever engine the requesting module's ``engine`` fixture names: the
contract suite parametrises it over both engines, each engine's own file points it at its engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support.engines import (
    Generation,
    build_tiny_mlx_model,
    closing,
    gemma_model_info,
    reference_answer,
    tiny_mlx_model_info,
)
from support.required import mlx_is_available

from agent.engines.base import Engine
from agent.engines.llama_cpp import LlamaCppEngine
from agent.engines.mlx import MlxEngine


@pytest_asyncio.fixture(scope="module")
async def llama_engine(
    gemma_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LlamaCppEngine]:
    """llama.cpp on the real Gemma 3 270M GGUF, two slots."""
    info = gemma_model_info(gemma_path, tmp_path_factory)
    async with closing(LlamaCppEngine(info, slots=2)) as engine:
        await engine.load()
        yield engine


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny MLX model's directory; skips where mlx-lm is not installed."""
    try:
        import mlx.core  # noqa: F401
        import mlx_lm  # noqa: F401
    except ImportError as exc:  # a platform without MLX builds skips; elsewhere it is a failure
        if mlx_is_available():
            raise
        pytest.skip(f"MLX has no build for this platform: {exc}")
    return build_tiny_mlx_model(tmp_path_factory.mktemp("tiny-mlx"))


@pytest_asyncio.fixture(scope="module")
async def mlx_engine(tiny_model: Path) -> AsyncIterator[MlxEngine]:
    """MLX on the tiny model, two slots."""
    info = tiny_mlx_model_info(tiny_model)
    async with closing(MlxEngine(info, slots=2)) as engine:
        await engine.load()
        yield engine


@pytest_asyncio.fixture(scope="module")
async def colours(engine: Engine) -> Generation:
    """The greedy answer to COLOURS on the module's ``engine``, the reference to compare against."""
    return await reference_answer(engine)
