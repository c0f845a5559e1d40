"""Reference runs: what the coordinator's model tools ask the agent's engine, and its answers.

The coordinator never runs an engine. ``koretex-coordinator models add | fingerprint | calibrate``
start the agent's reference command (``python -m agent.reference``) on the same machine, write one
request below to its stdin as JSON, and read one JSON answer from its stdout: the request's result
(exit status 0) or a :class:`ReferenceFailure` (exit status 1).

The prompts travel in the request, already drawn: how fingerprint prompts are drawn from a secret
stays the coordinator's (:mod:`coordinator.probes.fingerprint_prompts`), and so does judging
drift (:mod:`coordinator.probes.plausibility`): the agent only answers and scores.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from protocol.catalogue import CatalogueModel
from protocol.chat import TokenLogprob, WireModel
from protocol.fingerprint import FINGERPRINT_MAX_TOKENS

WeightsPath = Annotated[str, Field(min_length=1)]
"""A GGUF file or an MLX directory on the machine that runs the reference command."""


class DescribeWeights(WireModel):
    """What the weights at ``weights`` say about themselves, and their identity."""

    type: Literal["describe_weights"] = "describe_weights"
    weights: WeightsPath


class WeightsDescription(WireModel):
    type: Literal["weights_description"] = "weights_description"
    engine: Literal["llama.cpp", "mlx"]
    name: str
    architecture: str
    parameters: str  # "135M", "7B"
    quantization: str | None
    context_length: int = Field(gt=0)  # the context the weights were trained for
    chat_template: bool
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # a file's, or an MLX directory's manifest's


class FingerprintRun(WireModel):
    """Greedy answers of the model's exact weights to ``prompts``, with top-k logprobs; the
    answer is a :class:`protocol.fingerprint.Fingerprint`."""

    type: Literal["fingerprint_run"] = "fingerprint_run"
    model: CatalogueModel
    weights: WeightsPath | None = None
    """``None``: the weights a node would serve for ``model``, from the models directory."""
    prompts: tuple[str, ...] = Field(min_length=1)
    top_logprobs: int = Field(default=5, ge=1, le=20)
    max_tokens: int = Field(default=FINGERPRINT_MAX_TOKENS, ge=1)
    threads: int = Field(default=0, ge=0)  # 0: the engine's choice
    check_sha256: bool = True
    """Refuse weights whose hash is not one of the model's catalogue weights."""


class EngineSetup(WireModel):
    """One way an honest node may run the engine: the floating-point drift calibration spans."""

    threads: int = Field(ge=1)
    batch: int = Field(ge=1)
    context: int = Field(ge=1)

    def __str__(self) -> str:
        return f"threads={self.threads} batch={self.batch} n_ctx={self.context}"


class CalibrationRun(WireModel):
    """Every setup (and each substitute, in the first setup) answers every prompt at every
    temperature; every other setup scores each answer's tokens. The answer is a
    :class:`CalibrationRecord`."""

    type: Literal["calibration_run"] = "calibration_run"
    model: CatalogueModel
    weights: WeightsPath | None = None  # as in FingerprintRun
    substitutes: tuple[WeightsPath, ...] = ()
    setups: tuple[EngineSetup, ...] = Field(min_length=1)
    prompts: tuple[str, ...] = Field(min_length=1)
    temperatures: tuple[float, ...] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    seed: int  # draws each sampled answer's seed, in answer order
    top_logprobs: int = Field(default=5, ge=1, le=20)


class Scoring(WireModel):
    scorer: str  # the setup that scored, as str(EngineSetup)
    tokens: tuple[TokenLogprob, ...]


class CrossScoredAnswer(WireModel):
    generator: str  # str(EngineSetup), or "substitute FILENAME"
    temperature: float
    prompt: str
    claimed: tuple[TokenLogprob, ...]  # what the generator reported for its own tokens
    scorings: tuple[Scoring, ...]  # every other setup's logprobs of exactly those tokens


class CalibrationRecord(WireModel):
    type: Literal["calibration_record"] = "calibration_record"
    answers: tuple[CrossScoredAnswer, ...]


ReferenceRequest = Annotated[
    DescribeWeights | FingerprintRun | CalibrationRun, Field(discriminator="type")
]
REFERENCE_REQUEST: TypeAdapter[DescribeWeights | FingerprintRun | CalibrationRun] = TypeAdapter(
    ReferenceRequest
)

FailureKind = Literal[
    "unusable_weights",  # missing, unreadable, not weights, or not downloaded yet
    "weights_mismatch",  # not the catalogue model's weights (a fingerprint run)
    "engine_missing",  # the engine's package is not installed on this machine
    "engine_failed",  # the engine could not load or run the weights
]


class ReferenceFailure(WireModel):
    type: Literal["reference_failure"] = "reference_failure"
    kind: FailureKind
    message: str
