"""The catalogue's vocabulary: which exact weights a model id names, as both programs read it.

The catalogue itself is data: the coordinator keeps it in its database (operators add models with
``koretex-coordinator models add``) and publishes it at ``GET /v1/network/catalogue``; agents
learn it from there when they start. :data:`SEED` is only what a new database starts with and
what an agent falls back on before it has ever reached a coordinator.

A catalogue id names exact weights: the node declares which id its weights are, and the sha256 of
the file lets either side check it. A model's chat template is its own (the weights carry it, and
nodes render it); the catalogue only records whether there is one. A model without one is a
completion model: the coordinator refuses chat requests to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.ids import ModelId

MLX_WEIGHT_FILES = ("*.safetensors", "*.json", "*.jinja", "*.model", "*.tiktoken", "*.txt")
"""The files of an MLX weights directory that make up its identity, and that a download fetches."""

MAX_CATALOGUE_MODELS = 1000
"""More models than any network serves; bounds what an agent accepts from a coordinator."""


class CatalogueData(BaseModel):
    """Published catalogue entries: immutable, and tolerant of fields a newer coordinator adds."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class WeightsFile(CatalogueData):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    filename: str = Field(min_length=1, max_length=255, pattern=r"^[^/\\]+$")
    repo: str | None = Field(default=None, max_length=200)  # Hugging Face repo to download from
    revision: str | None = Field(default=None, max_length=100)  # the repo's commit or branch
    engine: Literal["llama.cpp", "mlx"] = "llama.cpp"
    size_bytes: int | None = Field(default=None, ge=0)
    quantization: str | None = Field(default=None, max_length=32)


class CatalogueModel(CatalogueData):
    id: ModelId = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    name: str = Field(max_length=200)
    chat_template: bool  # whether the weights carry a chat template (else: completions only)
    context_length: int = Field(ge=1)  # the weights' trained context
    parameters: str = Field(max_length=32)
    architecture: str | None = Field(default=None, max_length=64)
    weights: tuple[WeightsFile, ...] = Field(default=(), max_length=16)


class PublishedModel(CatalogueModel):
    """A catalogue model as ``GET /v1/network/catalogue`` lists it, with its prices."""

    price_input_per_1m: int = Field(ge=0)  # credits per million prompt tokens
    price_output_per_1m: int = Field(ge=0)  # credits per million completion tokens
    fingerprinted: bool = False  # whether probes can check a node's weights are these
    nodes: int = Field(default=0, ge=0)  # nodes connected now that serve it, network-wide


class NetworkCatalogue(CatalogueData):
    object: Literal["list"] = "list"
    data: tuple[PublishedModel, ...] = Field(max_length=MAX_CATALOGUE_MODELS)


SEED: tuple[CatalogueModel, ...] = (
    CatalogueModel(
        id=ModelId("gemma-3-270m"),
        name="Gemma 3 270M (Q4_K_M)",
        chat_template=False,  # the base model: it continues text, it does not chat
        context_length=32768,
        parameters="270M",
        architecture="gemma3",
        weights=(
            WeightsFile(
                sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                filename="gemma-3-270m-q4_k_m.gguf", size_bytes=253_113_024,
                quantization="Q4_K_M",
            ),
        ),
    ),
    CatalogueModel(
        id=ModelId("smollm2-135m-instruct"),
        name="SmolLM2 135M Instruct (Q4_1)",
        chat_template=True,  # ChatML
        context_length=8192,
        parameters="135M",
        architecture="llama",
        weights=(
            WeightsFile(
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                filename="SmolLM2-135M-Instruct.Q4_1.gguf", size_bytes=98_362_432,
                quantization="Q4_1",
            ),
        ),
    ),
)


def by_id(model_id: str, known: Iterable[CatalogueModel] = SEED) -> CatalogueModel | None:
    return next((m for m in known if m.id == model_id), None)


def by_sha256(sha256: str, known: Iterable[CatalogueModel] = SEED) -> CatalogueModel | None:
    return next((m for m in known if any(w.sha256 == sha256 for w in m.weights)), None)
