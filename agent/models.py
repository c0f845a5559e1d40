"""Resolving ``--model`` to weights on disk and the catalogue id they are; pulling them by name.

Weights are a GGUF file (llama.cpp) or a directory of MLX weights (config.json, safetensors and
the tokenizer's files). A file's identity is its sha256; a directory's is the sha256 of its
manifest, the ``sha256sum`` lines of the files matching MLX_WEIGHT_FILES in name order, so an
operator can check it with ``sha256sum config.json model.safetensors … | sha256sum``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from agent import paths
from agent.errors import ConfigurationError
from protocol import catalogue
from protocol.catalogue import MLX_WEIGHT_FILES, CatalogueModel, WeightsFile
from protocol.ids import ModelId

Downloader = Callable[[WeightsFile, Path, bool], Path]
"""Fetches one catalogue weights entry into a directory, returning the path it wrote
(``directory / weights.filename``); the bool asks for a progress bar."""


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    path: Path
    sha256: str
    model_id: ModelId


def resolve(
    spec: str, model_id: str | None = None, known: Sequence[CatalogueModel] = catalogue.SEED
) -> ResolvedModel:
    """Find the weights ``spec`` names and which model of the ``known`` catalogue they are."""
    path = Path(spec).expanduser()
    if not path.exists():
        entry = catalogue.by_id(spec, known)
        if entry is None:
            raise ConfigurationError(f"{spec!r} is neither a file nor a catalogue model")
        cached = [paths.models_dir() / w.filename for w in entry.weights]
        path = next((p for p in cached if p.exists()), cached[0] if cached else path)
        if not path.exists():
            raise ConfigurationError(
                f"{spec!r} is not downloaded yet; run: koretex models pull {spec}"
            )
    digest = weights_sha256(path)
    entry = catalogue.by_id(model_id, known) if model_id else catalogue.by_sha256(digest, known)
    if entry is None:
        what = f"{model_id!r} is not a catalogue model" if model_id else (
            f"{path.name} (sha256 {digest[:12]}…) is not a catalogue model; pass --model-id"
        )
        raise ConfigurationError(what)
    return ResolvedModel(path.resolve(), digest, entry.id)


def hf_download(weights: WeightsFile, directory: Path, progress: bool) -> Path:
    """Fetch from the Hugging Face hub (its ``HF_*`` variables apply: endpoint, token, offline)."""
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ConfigurationError(
            "pulling models needs huggingface_hub: pip install 'koretex[agent]'"
        ) from exc
    assert weights.repo is not None

    class Quiet(tqdm):  # type: ignore[misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    bars = None if progress else Quiet
    try:
        if weights.engine == "mlx":
            written = snapshot_download(
                weights.repo, revision=weights.revision, local_dir=directory / weights.filename,
                allow_patterns=list(MLX_WEIGHT_FILES), tqdm_class=bars,
            )
        else:
            written = hf_hub_download(
                weights.repo, weights.filename, revision=weights.revision, local_dir=directory,
                tqdm_class=bars,
            )
    except OSError as exc:  # the hub's HTTP, offline and not-found errors are all OSErrors
        raise ConfigurationError(
            f"could not download {weights.filename} from {weights.repo}: {exc}"
        ) from exc
    return Path(str(written))


def pull(
    model_id: str, *, progress: bool = True, download: Downloader = hf_download,
    known: Sequence[CatalogueModel] = catalogue.SEED,
) -> Path:
    """Download a catalogue model's weights into the models directory once, checking the hash.

    Weights already there with the right hash are not fetched again. Fetched weights whose hash
    is not the catalogue's are deleted and the pull fails. Returns where the weights are, which
    :func:`resolve` then finds by the model's name.
    """
    entry = next((m for m in known if m.id == model_id), None)
    if entry is None:
        names = ", ".join(m.id for m in known)
        raise ConfigurationError(f"{model_id!r} is not a catalogue model (known: {names})")
    weights = next((w for w in entry.weights if w.repo is not None), None)
    if weights is None:
        raise ConfigurationError(
            f"the catalogue names no download source for {model_id!r}; "
            "pass the weights with --model PATH (and --model-id if needed)"
        )
    directory = paths.models_dir()
    target = directory / weights.filename
    if target.exists() and _holds(target, weights.sha256):
        return target
    _remove(target)  # a partial or stale copy must not pass for the real one
    directory.mkdir(parents=True, exist_ok=True)
    fetched = download(weights, directory, progress)
    digest = weights_sha256(fetched, remember=False)
    if digest != weights.sha256:
        _remove(fetched)
        raise ConfigurationError(
            f"{weights.filename} from {weights.repo} has sha256 {digest}, not the catalogue's "
            f"{weights.sha256}; deleted it"
        )
    return fetched


def weights_sha256(path: Path, *, remember: bool = True) -> str:
    """The identity of a GGUF file or of a directory of MLX weights (see the module docstring)."""
    if not path.is_dir():
        return file_sha256(path, remember=remember)
    files = sorted(
        (p for p in path.iterdir()
         if p.is_file() and any(fnmatch(p.name, pattern) for pattern in MLX_WEIGHT_FILES)),
        key=lambda p: p.name,
    )
    if not any(p.suffix == ".safetensors" for p in files):
        raise ConfigurationError(f"{path} holds no safetensors weights")
    manifest = "".join(f"{file_sha256(p, remember=remember)}  {p.name}\n" for p in files)
    return hashlib.sha256(manifest.encode()).hexdigest()


def file_sha256(path: Path, *, remember: bool = True) -> str:
    """The file's sha256, remembered by size and modification time to skip re-reading.

    ``remember=False`` always reads the file: for checking a download, where a reused
    modification time must not vouch for different bytes.
    """
    stat = path.stat()
    cache_path = paths.cache_dir() / "sha256.json"
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        known: dict[str, str] = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        known = {}
    if remember and key in known:
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


def _holds(path: Path, sha256: str) -> bool:
    try:
        return weights_sha256(path) == sha256
    except ConfigurationError:  # a directory without weights in it
        return False


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def resolve_all(
    specs: Sequence[str], model_ids: Sequence[str] = (),
    known: Sequence[CatalogueModel] = catalogue.SEED,
) -> tuple[ResolvedModel, ...]:
    """Each ``--model`` resolved (``model_ids`` pair with them in order); one model id each."""
    if not specs:
        raise ConfigurationError(
            "no model: pass --model PATH_OR_NAME or run: koretex config set --model NAME"
        )
    if len(model_ids) > len(specs):
        raise ConfigurationError(f"{len(model_ids)} --model-id for {len(specs)} --model")
    resolved = tuple(
        resolve(spec, model_ids[index] if index < len(model_ids) else None, known)
        for index, spec in enumerate(specs)
    )
    seen: set[str] = set()
    for model in resolved:
        if model.model_id in seen:
            raise ConfigurationError(f"{model.model_id} is given twice")
        seen.add(model.model_id)
    return resolved
