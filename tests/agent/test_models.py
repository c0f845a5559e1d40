"""Finding weights by path or catalogue name, and pulling them with their hash checked.

Everything here is offline: the download step of a pull is a function handed in, and these
tests hand in one that copies a local file, so the checks around it run for real.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from agent import paths
from agent.engines.select import pick_engine
from agent.errors import ConfigurationError
from agent.models import pull, resolve, weights_sha256
from protocol.catalogue import SEED, CatalogueModel, WeightsFile
from protocol.ids import ModelId

GEMMA = ModelId("gemma-3-270m")


@pytest.fixture(autouse=True)
def own_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The models directory and the digest cache live in this test's temporary directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # platformdirs' base on macOS
    assert str(paths.models_dir()).startswith(str(tmp_path))


# --- resolve --------------------------------------------------------------------------------


def test_a_catalogue_file_resolves_to_its_model_by_hash(gemma_path: Path) -> None:
    resolved = resolve(str(gemma_path))
    assert resolved.model_id == GEMMA
    assert resolved.sha256 == SEED[0].weights[0].sha256
    assert resolved.path == gemma_path.resolve()


def test_the_instruct_model_resolves_by_hash(smollm2_path: Path) -> None:
    resolved = resolve(str(smollm2_path))
    assert resolved.model_id == "smollm2-135m-instruct"
    assert resolved.sha256 == SEED[1].weights[0].sha256


def test_a_pulled_file_resolves_by_catalogue_name(gemma_path: Path) -> None:
    paths.models_dir().mkdir(parents=True)
    (paths.models_dir() / "gemma-3-270m-q4_k_m.gguf").symlink_to(gemma_path)
    resolved = resolve("gemma-3-270m")
    assert resolved.model_id == GEMMA
    assert resolved.path == gemma_path.resolve()


def test_a_catalogue_name_not_downloaded_says_how_to_pull_it() -> None:
    with pytest.raises(ConfigurationError, match="koretex models pull gemma-3-270m"):
        resolve("gemma-3-270m")


def test_neither_a_file_nor_a_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="neither a file nor a catalogue model"):
        resolve(str(tmp_path / "missing.gguf"))


def test_unknown_weights_need_a_model_id(tmp_path: Path) -> None:
    weights = tmp_path / "mystery.gguf"
    weights.write_bytes(b"GGUF not in the catalogue")
    with pytest.raises(ConfigurationError, match="--model-id"):
        resolve(str(weights))

    declared = resolve(str(weights), model_id="gemma-3-270m")
    assert declared.model_id == GEMMA
    assert declared.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()

    with pytest.raises(ConfigurationError, match="'no-such-model' is not a catalogue model"):
        resolve(str(weights), model_id="no-such-model")


def write_mlx_weights(directory: Path) -> Path:
    directory.mkdir()
    (directory / "config.json").write_text('{"model_type": "llama"}')
    (directory / "model.safetensors").write_bytes(b"\x00" * 64)
    (directory / "tokenizer.json").write_text("{}")
    (directory / "README.md").write_text("Not part of the identity.")
    return directory


def test_an_mlx_directory_is_known_by_the_hash_of_its_manifest(tmp_path: Path) -> None:
    weights = write_mlx_weights(tmp_path / "tiny-mlx")
    manifest = "".join(
        f"{hashlib.sha256((weights / name).read_bytes()).hexdigest()}  {name}\n"
        for name in ("config.json", "model.safetensors", "tokenizer.json")
    )
    identity = hashlib.sha256(manifest.encode()).hexdigest()

    resolved = resolve(str(weights), model_id="gemma-3-270m")
    assert resolved.sha256 == identity
    assert pick_engine("auto", resolved) == "mlx"
    with pytest.raises(ConfigurationError, match="GGUF"):
        pick_engine("llama.cpp", resolved)

    (weights / "README.md").write_text("Edited: the weights are the same.")
    assert weights_sha256(weights) == identity
    (weights / "model.safetensors").write_bytes(b"\x01" * 64)
    assert weights_sha256(weights) != identity


def test_a_directory_without_weights_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="no safetensors"):
        resolve(str(tmp_path / "empty"), model_id="gemma-3-270m")


def test_gguf_runs_on_llama_cpp_and_mlx_refuses_it(gemma_path: Path) -> None:
    resolved = resolve(str(gemma_path))
    assert pick_engine("auto", resolved) == "llama.cpp"
    with pytest.raises(ConfigurationError, match="directory of MLX weights"):
        pick_engine("mlx", resolved)


# --- pull -----------------------------------------------------------------------------------


class CopyingDownloader:
    """Stands in for the hub: "downloads" by copying a local file or directory."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.calls = 0

    def __call__(self, weights: WeightsFile, directory: Path, progress: bool) -> Path:
        self.calls += 1
        target = directory / weights.filename
        if self.source.is_dir():
            shutil.copytree(self.source, target)
        else:
            shutil.copyfile(self.source, target)
        return target


def one_model(weights: WeightsFile) -> tuple[CatalogueModel, ...]:
    return (CatalogueModel(
        id=ModelId("tiny-test"), name="Tiny", chat_template=False, context_length=256,
        parameters="1K", weights=(weights,),
    ),)


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """The bytes the catalogue entry below vouches for."""
    source = tmp_path / "published.gguf"
    source.write_bytes(bytes(range(256)) * 1024)
    return source


@pytest.fixture
def catalogue(published: Path) -> tuple[CatalogueModel, ...]:
    return one_model(WeightsFile(
        sha256=hashlib.sha256(published.read_bytes()).hexdigest(),
        filename="tiny-test.gguf", repo="example/tiny-test-GGUF",
    ))


def test_pull_keeps_weights_whose_hash_matches_and_fetches_them_once(
    published: Path, catalogue: tuple[CatalogueModel, ...]
) -> None:
    hub = CopyingDownloader(published)
    pulled = pull("tiny-test", download=hub, known=catalogue, progress=False)
    assert pulled == paths.models_dir() / "tiny-test.gguf"
    assert pulled.read_bytes() == published.read_bytes()
    assert pull("tiny-test", download=hub, known=catalogue, progress=False) == pulled
    assert hub.calls == 1


def test_pull_deletes_weights_whose_hash_differs(
    tmp_path: Path, published: Path, catalogue: tuple[CatalogueModel, ...]
) -> None:
    corrupted = tmp_path / "corrupted.gguf"
    data = bytearray(published.read_bytes())
    data[1000] ^= 0xFF
    corrupted.write_bytes(bytes(data))

    with pytest.raises(ConfigurationError, match="not the catalogue's"):
        pull("tiny-test", download=CopyingDownloader(corrupted), known=catalogue)
    assert not (paths.models_dir() / "tiny-test.gguf").exists()


def test_pull_replaces_a_stale_copy(
    published: Path, catalogue: tuple[CatalogueModel, ...]
) -> None:
    paths.models_dir().mkdir(parents=True)
    (paths.models_dir() / "tiny-test.gguf").write_bytes(b"half a download")
    hub = CopyingDownloader(published)
    pulled = pull("tiny-test", download=hub, known=catalogue)
    assert hub.calls == 1
    assert pulled.read_bytes() == published.read_bytes()


def test_pull_checks_a_directory_of_mlx_weights(tmp_path: Path) -> None:
    source = write_mlx_weights(tmp_path / "published-mlx")
    entry = WeightsFile(
        sha256=weights_sha256(source), filename="tiny-test-mlx", repo="example/tiny-test-mlx",
        engine="mlx",
    )
    pulled = pull("tiny-test", download=CopyingDownloader(source), known=one_model(entry))
    assert pulled.is_dir() and weights_sha256(pulled) == entry.sha256
    shutil.rmtree(pulled)

    (source / "config.json").write_text('{"model_type": "tampered"}')
    with pytest.raises(ConfigurationError, match="not the catalogue's"):
        pull("tiny-test", download=CopyingDownloader(source), known=one_model(entry))
    assert not pulled.exists()


def test_pull_needs_a_catalogue_model_with_a_download_source(published: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a catalogue model"):
        pull("no-such-model")
    unsourced = one_model(WeightsFile(sha256="0" * 64, filename="tiny-test.gguf"))
    hub = CopyingDownloader(published)
    with pytest.raises(ConfigurationError, match="no download source"):
        pull("tiny-test", download=hub, known=unsourced)
    assert hub.calls == 0
