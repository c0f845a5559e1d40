"""The catalogue of model identities both programs agree on.

A catalogue id names exact weights: the node declares which id its weights are, and the sha256 of
the file lets either side check it. Prices and fingerprints are the coordinator's business.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocol.chat import WireModel
from protocol.ids import ModelId

ChatFormat = Literal["gemma"]


class WeightsFile(WireModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    filename: str
    repo: str | None = None  # where the agent may download it from, by catalogue name
    engine: Literal["llama.cpp", "mlx"] = "llama.cpp"


class CatalogueModel(WireModel):
    id: ModelId
    name: str
    chat_format: ChatFormat
    context_length: int = Field(ge=1)
    parameters: str
    weights: tuple[WeightsFile, ...] = ()


CATALOGUE: tuple[CatalogueModel, ...] = (
    CatalogueModel(
        id=ModelId("gemma-3-270m"),
        name="Gemma 3 270M (Q4_K_M)",
        chat_format="gemma",
        context_length=32768,
        parameters="270M",
        weights=(
            WeightsFile(
                sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                filename="gemma-3-270m-q4_k_m.gguf",
            ),
        ),
    ),
)


def by_id(model_id: str) -> CatalogueModel | None:
    return next((m for m in CATALOGUE if m.id == model_id), None)


def by_sha256(sha256: str) -> CatalogueModel | None:
    return next((m for m in CATALOGUE if any(w.sha256 == sha256 for w in m.weights)), None)
