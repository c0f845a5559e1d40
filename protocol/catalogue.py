"""The catalogue of model identities both programs agree on.

A catalogue id names exact weights: the node declares which id its weights are, and the sha256 of
the file lets either side check it. Prices and fingerprints are the coordinator's business.

A model's chat template is its own (the weights carry it, and nodes render it); the catalogue
only records whether there is one. A model without one is a completion model: the coordinator
refuses chat requests to it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocol.chat import WireModel
from protocol.ids import ModelId


class WeightsFile(WireModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    filename: str
    repo: str | None = None  # where the agent may download it from, by catalogue name
    engine: Literal["llama.cpp", "mlx"] = "llama.cpp"


class CatalogueModel(WireModel):
    id: ModelId
    name: str
    chat_template: bool  # whether the weights carry a chat template (else: completions only)
    context_length: int = Field(ge=1)  # the context a node serves it with by default
    parameters: str
    weights: tuple[WeightsFile, ...] = ()


CATALOGUE: tuple[CatalogueModel, ...] = (
    CatalogueModel(
        id=ModelId("gemma-3-270m"),
        name="Gemma 3 270M (Q4_K_M)",
        chat_template=False,  # the base model: it continues text, it does not chat
        context_length=4096,  # as nodes serve it (the agent's default context_length)
        parameters="270M",
        weights=(
            WeightsFile(
                sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                filename="gemma-3-270m-q4_k_m.gguf",
            ),
        ),
    ),
    CatalogueModel(
        id=ModelId("smollm2-135m-instruct"),
        name="SmolLM2 135M Instruct (Q4_1)",
        chat_template=True,  # ChatML
        context_length=8192,  # llama.context_length in the GGUF
        parameters="135M",
        weights=(
            WeightsFile(
                sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
    ),
)


def by_id(model_id: str) -> CatalogueModel | None:
    return next((m for m in CATALOGUE if m.id == model_id), None)


def by_sha256(sha256: str) -> CatalogueModel | None:
    return next((m for m in CATALOGUE if any(w.sha256 == sha256 for w in m.weights)), None)
