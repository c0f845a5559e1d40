"""Choosing and building the engine for this machine."""

from __future__ import annotations

import importlib.util
import platform

from agent.engines.base import Engine, ModelInfo
from agent.engines.llama_cpp import LlamaCppEngine
from agent.errors import ConfigurationError
from agent.models import ResolvedModel


def pick_engine(choice: str, model: ResolvedModel) -> str:
    """``auto`` means MLX on Apple Silicon for MLX weights, llama.cpp for everything else."""
    if choice != "auto":
        return choice
    apple_silicon = platform.system() == "Darwin" and platform.machine() == "arm64"
    if apple_silicon and model.path.is_dir() and importlib.util.find_spec("mlx_lm"):
        return "mlx"
    return "llama.cpp"


def build_engine(
    choice: str, model: ResolvedModel, *, slots: int, context_length: int, threads: int
) -> Engine:
    info = ModelInfo(str(model.path), model.sha256, context_length)
    name = pick_engine(choice, model)
    if name == "llama.cpp":
        return LlamaCppEngine(info, model.chat_format, slots=slots, n_threads=threads)
    raise ConfigurationError(f"engine {name!r} is not available on this machine")
