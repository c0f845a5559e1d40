"""Resolving ``--model`` to weights on disk and the catalogue id they are."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from agent import paths
from agent.engines.chat_format import FORMATS, ChatFormat
from agent.errors import ConfigurationError
from protocol import catalogue
from protocol.ids import ModelId


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    path: Path
    sha256: str
    model_id: ModelId
    chat_format: ChatFormat


def resolve(spec: str, model_id: str | None = None) -> ResolvedModel:
    """Find the weights ``spec`` names and which catalogue model they are."""
    path = Path(spec).expanduser()
    if not path.exists():
        entry = catalogue.by_id(spec)
        if entry is None:
            raise ConfigurationError(f"{spec!r} is neither a file nor a catalogue model")
        cached = [paths.models_dir() / w.filename for w in entry.weights]
        path = next((p for p in cached if p.exists()), cached[0] if cached else path)
        if not path.exists():
            raise ConfigurationError(
                f"{spec!r} is not downloaded yet; run: koretex models pull {spec}"
            )
    digest = file_sha256(path)
    entry = catalogue.by_id(model_id) if model_id else catalogue.by_sha256(digest)
    if entry is None:
        raise ConfigurationError(
            f"{path.name} (sha256 {digest[:12]}…) is not a catalogue model; pass --model-id"
        )
    return ResolvedModel(path.resolve(), digest, entry.id, FORMATS[entry.chat_format])


def file_sha256(path: Path) -> str:
    """The file's sha256, remembered by size and modification time to skip re-reading."""
    stat = path.stat()
    cache_path = paths.cache_dir() / "sha256.json"
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        known: dict[str, str] = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    known[key] = digest.hexdigest()
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(known))
    except OSError:
        pass
    return known[key]
