"""The reference command: the engine runs behind ``koretex-coordinator models``.

``python -m agent.reference`` reads one request of :mod:`protocol.reference` as JSON on stdin and
writes its answer as JSON on stdout: a weights description, a fingerprint, or a calibration
record (exit status 0), else a ``ReferenceFailure`` (exit status 1); a request it cannot parse
exits with status 2. The coordinator starts it on the machine that holds the weights, so the
coordinator's package installs without llama.cpp; the prompts arrive already drawn, and judging
the answers stays with the coordinator.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from agent.errors import ConfigurationError, EngineError, EngineUnavailable
from agent.models import resolve, weights_sha256
from agent.weights_info import describe
from protocol.catalogue import CatalogueModel
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob
from protocol.fingerprint import Fingerprint, FingerprintAnswer, FingerprintMismatch
from protocol.reference import (
    REFERENCE_REQUEST,
    CalibrationRecord,
    CalibrationRun,
    CrossScoredAnswer,
    DescribeWeights,
    EngineSetup,
    FingerprintRun,
    ReferenceFailure,
    Scoring,
    WeightsDescription,
)

if TYPE_CHECKING:
    from agent.engines.llama_cpp import LlamaCppEngine


def describe_weights(request: DescribeWeights) -> WeightsDescription:
    """What the weights say about themselves (no engine needed), and their sha256."""
    path = Path(request.weights)
    info = describe(path)
    return WeightsDescription(
        engine="mlx" if info.engine == "mlx" else "llama.cpp", name=info.name,
        architecture=info.architecture, parameters=info.parameters,
        quantization=info.quantization, context_length=info.context_length,
        chat_template=info.chat_template, size_bytes=info.size_bytes,
        sha256=weights_sha256(path, remember=False),
    )


def _weights(model: CatalogueModel, weights: str | None) -> Path:
    if weights is not None:
        return Path(weights)
    return resolve(model.id, known=(model,)).path  # the weights a node would serve


def engine_for(path: Path, setup: EngineSetup, sha256: str = "") -> LlamaCppEngine:
    """llama.cpp on ``path`` as a node running ``setup`` would run it."""
    from agent.engines.base import ModelInfo
    from agent.engines.llama_cpp import LlamaCppEngine

    return LlamaCppEngine(
        ModelInfo(str(path), sha256, setup.context), n_threads=setup.threads,
        n_batch=setup.batch,
    )


async def _answer(
    engine: LlamaCppEngine, prompt: str, params: SamplingParams, top_logprobs: int
) -> tuple[TokenLogprob, ...]:
    from agent.engines.base import GeneratedToken, GenerationRequest

    messages = (ChatMessage(role="user", content=prompt),)
    return tuple([
        event.logprob async for event in engine.generate(
            GenerationRequest(messages, params, top_logprobs=top_logprobs)
        ) if isinstance(event, GeneratedToken) and event.logprob is not None
    ])


async def run_fingerprint(request: FingerprintRun) -> Fingerprint:
    """Greedy answers of the model's exact weights to the request's prompts."""
    from agent.engines.base import ModelInfo
    from agent.engines.llama_cpp import LlamaCppEngine

    model = request.model
    weights = _weights(model, request.weights)
    sha256 = weights_sha256(weights, remember=False)
    known = {w.sha256 for w in model.weights}
    if request.check_sha256 and known and sha256 not in known:
        raise FingerprintMismatch(
            f"{weights} has sha256 {sha256}, not one of {model.id}'s catalogue weights"
        )
    engine = LlamaCppEngine(ModelInfo(str(weights), sha256, 2048), n_threads=request.threads)
    answers: list[FingerprintAnswer] = []
    try:
        await engine.load()
        for prompt in request.prompts:
            params = SamplingParams(max_tokens=request.max_tokens, temperature=0.0)
            tokens = await _answer(engine, prompt, params, request.top_logprobs)
            answers.append(FingerprintAnswer(
                messages=(ChatMessage(role="user", content=prompt),), params=params,
                tokens=tokens,
            ))
    finally:
        await engine.close()
    return Fingerprint(
        model=model.id, weights_sha256=sha256, engine=engine.name,
        top_logprobs=request.top_logprobs, answers=tuple(answers),
    )


async def run_calibration(request: CalibrationRun) -> CalibrationRecord:
    """Each setup (and substitute) answers; every other setup scores those exact tokens. Each
    engine answers and scores every prompt in turn, so its later runs start on a context that
    held another job, as a busy node's do."""
    from agent.engines.base import ScoringRequest

    rng = random.Random(request.seed)
    weights = _weights(request.model, request.weights)
    engines = {str(setup): engine_for(weights, setup) for setup in request.setups}
    generators = dict(engines)
    for substitute in map(Path, request.substitutes):
        generators[f"substitute {substitute.name}"] = engine_for(substitute, request.setups[0])
    answers: list[CrossScoredAnswer] = []
    try:
        for (name, generator), temperature, prompt in itertools.product(
            generators.items(), request.temperatures, request.prompts
        ):
            params = SamplingParams(
                max_tokens=request.max_tokens, temperature=temperature,
                seed=rng.getrandbits(31),
            )
            claimed = await _answer(generator, prompt, params, request.top_logprobs)
            ids = tuple(lp.token_id for lp in claimed if lp.token_id is not None)
            scorings = [
                Scoring(scorer=scorer_name, tokens=await scorer.score(ScoringRequest(
                    messages=(ChatMessage(role="user", content=prompt),), text="",
                    token_ids=ids, top_logprobs=request.top_logprobs,
                )))
                for scorer_name, scorer in engines.items() if scorer_name != name
            ]
            answers.append(CrossScoredAnswer(
                generator=name, temperature=temperature, prompt=prompt, claimed=claimed,
                scorings=tuple(scorings),
            ))
    finally:
        for each in generators.values():
            await each.close()
    return CalibrationRecord(answers=tuple(answers))


async def run(request: DescribeWeights | FingerprintRun | CalibrationRun) -> BaseModel:
    """The request's answer, or a ``ReferenceFailure`` naming what is missing or wrong."""
    try:
        if isinstance(request, DescribeWeights):
            return describe_weights(request)
        if isinstance(request, FingerprintRun):
            return await run_fingerprint(request)
        return await run_calibration(request)
    except FingerprintMismatch as exc:
        return ReferenceFailure(kind="weights_mismatch", message=str(exc))
    except EngineUnavailable as exc:
        return ReferenceFailure(kind="engine_missing", message=str(exc))
    except EngineError as exc:
        return ReferenceFailure(kind="engine_failed", message=str(exc))
    except (ConfigurationError, OSError) as exc:
        return ReferenceFailure(kind="unusable_weights", message=str(exc))


def main() -> None:
    try:
        request = REFERENCE_REQUEST.validate_json(sys.stdin.buffer.read())
    except ValidationError as exc:
        print(f"not a reference request: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    # The answer owns stdout: anything the engine's native code prints goes to stderr instead.
    answer_channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    answer = asyncio.run(run(request))
    with answer_channel:
        answer_channel.write(answer.model_dump_json())
    raise SystemExit(1 if isinstance(answer, ReferenceFailure) else 0)


if __name__ == "__main__":
    main()
