"""Substitute models, built once per session under a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.substitutes import build_tiny_model, requantize


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
