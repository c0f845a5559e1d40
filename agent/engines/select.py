"""Choosing and building the engine for this machine."""

from __future__ import annotations

from agent.engines.base import Engine, ModelInfo
from agent.engines.llama_cpp import LlamaCppEngine
from agent.errors import ConfigurationError
from agent.models import ResolvedModel


def pick_engine(choice: str, model: ResolvedModel) -> str:
    """``auto`` follows the weights: MLX for a directory of MLX weights, llama.cpp for GGUF.

    Each engine reads only its own format, so the weights decide; an operator who wants Metal
    through MLX on Apple Silicon points the node at MLX weights. An explicit choice that cannot
    read the weights is refused here rather than failing at load.
    """
    mlx_weights = model.path.is_dir()
    if choice == "auto":
        return "mlx" if mlx_weights else "llama.cpp"
    if choice == "mlx" and not mlx_weights:
        raise ConfigurationError(
            f"MLX serves a directory of MLX weights (config.json and *.safetensors); "
            f"{model.path} is a file"
        )
    if choice == "llama.cpp" and mlx_weights:
        raise ConfigurationError(
            f"llama.cpp serves a GGUF file; {model.path} is a directory of MLX weights"
        )
    return choice


def build_engine(
    choice: str, model: ResolvedModel, *, slots: int, context_length: int, threads: int
) -> Engine:
    """The engine for these weights; ``threads`` applies to llama.cpp (MLX schedules its own)."""
    info = ModelInfo(str(model.path), model.sha256, context_length)
    name = pick_engine(choice, model)
    if name == "llama.cpp":
        return LlamaCppEngine(info, slots=slots, n_threads=threads)
    if name == "mlx":
        from agent.engines.mlx import MlxEngine

        return MlxEngine(info, slots=slots)
    raise ConfigurationError(f"engine {name!r} is not available on this machine")
