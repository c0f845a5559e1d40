"""What a set of weights says about itself: architecture, size, quantization, context, template,
and the memory one token of context costs.

A GGUF file is read with the ``gguf`` package (metadata only: the tensors are memory-mapped, never
loaded); an MLX directory from its ``config.json`` and tokenizer files. Used by the agent to check
that the models it is asked to serve fit in memory, and by ``koretex-coordinator models add`` to
describe a model for the catalogue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigurationError

F16_BYTES = 2  # llama.cpp's and mlx-lm's default KV cache element


@dataclass(frozen=True, slots=True)
class WeightsInfo:
    engine: str  # "llama.cpp" (a GGUF file) or "mlx" (a directory)
    name: str
    architecture: str
    parameters: str  # "135M", "7B": the weights' own label, else counted from the tensors
    quantization: str | None
    context_length: int  # the context the weights were trained for
    chat_template: bool
    size_bytes: int
    kv_bytes_per_token: int  # keys and values of every layer, f16, for one token of context

    def memory_for(self, context_length: int, slots: int) -> int:
        """Bytes to serve with ``slots`` jobs at once, each of up to ``context_length`` tokens."""
        return self.size_bytes + self.kv_bytes_per_token * context_length * slots


def describe(path: Path) -> WeightsInfo:
    """Read ``path`` (a GGUF file or an MLX directory); a clear error if it is neither."""
    if path.is_dir():
        return _describe_mlx(path)
    if not path.is_file():
        raise ConfigurationError(f"{path} does not exist")
    return _describe_gguf(path)


def _describe_gguf(path: Path) -> WeightsInfo:
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise ConfigurationError(f"{path.name} is not a GGUF file: {exc}") from exc
    fields = reader.fields

    def value(key: str, default: Any = None) -> Any:
        field = fields.get(key)
        return default if field is None else field.contents()

    arch = value("general.architecture")
    if not arch:
        raise ConfigurationError(f"{path.name} names no architecture (general.architecture)")
    layers = int(value(f"{arch}.block_count", 0))
    heads = int(value(f"{arch}.attention.head_count", 1)) or 1
    kv_heads = int(value(f"{arch}.attention.head_count_kv", heads))
    head_dim = int(value(f"{arch}.embedding_length", 0)) // heads
    key_length = int(value(f"{arch}.attention.key_length", head_dim))
    value_length = int(value(f"{arch}.attention.value_length", head_dim))
    file_type = value("general.file_type")
    return WeightsInfo(
        engine="llama.cpp",
        name=str(value("general.name") or path.stem),
        architecture=str(arch),
        parameters=str(value("general.size_label") or _label(
            sum(int(tensor.n_elements) for tensor in reader.tensors)
        )),
        quantization=_gguf_quantization(file_type),
        context_length=int(value(f"{arch}.context_length", 0)) or 2048,
        chat_template=bool(value("tokenizer.chat_template")),
        size_bytes=path.stat().st_size,
        kv_bytes_per_token=layers * kv_heads * (key_length + value_length) * F16_BYTES,
    )


def _gguf_quantization(file_type: Any) -> str | None:
    import gguf

    if file_type is None:
        return None
    try:
        name = gguf.LlamaFileType(int(file_type)).name
    except ValueError:
        return None
    return name.removeprefix("MOSTLY_") if name != "ALL_F32" else "F32"


def _describe_mlx(path: Path) -> WeightsInfo:
    try:
        config: dict[str, Any] = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} has no readable config.json: {exc}") from exc
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise ConfigurationError(f"{path} holds no safetensors weights")
    heads = int(config.get("num_attention_heads", 1)) or 1
    kv_heads = int(config.get("num_key_value_heads", heads))
    head_dim = int(config.get("head_dim") or int(config.get("hidden_size", 0)) // heads)
    layers = int(config.get("num_hidden_layers", 0))
    quantization = config.get("quantization")
    return WeightsInfo(
        engine="mlx",
        name=path.name,
        architecture=str(config.get("model_type", "unknown")),
        parameters=_label(_safetensors_parameters(weights)),
        quantization=f"{quantization['bits']}bit" if isinstance(quantization, dict) else None,
        context_length=int(config.get("max_position_embeddings", 0)) or 2048,
        chat_template=_mlx_has_template(path),
        size_bytes=sum(p.stat().st_size for p in weights),
        kv_bytes_per_token=layers * kv_heads * head_dim * 2 * F16_BYTES,
    )


def _mlx_has_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        tokenizer = json.loads((path / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(tokenizer.get("chat_template"))


def _safetensors_parameters(files: list[Path]) -> int:
    """Elements in every tensor, from the safetensors headers (8-byte length, JSON header)."""
    total = 0
    for file in files:
        with file.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header: dict[str, Any] = json.loads(handle.read(min(length, 100_000_000)))
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dimension in tensor.get("shape", ()):
                count *= int(dimension)
            total += count
    return total


def _label(parameters: int) -> str:
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if parameters >= size:
            return f"{parameters / size:.3g}{unit}"
    return str(parameters)
