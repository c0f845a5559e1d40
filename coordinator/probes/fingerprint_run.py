"""The trusted run that computes a fingerprint, for ``koretex-coordinator models fingerprint``.

It runs the node's own engine in-process on the exact catalogue weights (the only way to get the
figures a genuine node produces), so it imports the agent's engine lazily: an offline admin tool
run by the platform on a machine it trusts, never part of the serving coordinator.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from protocol.catalogue import CatalogueModel
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob
from protocol.fingerprint import (
    FINGERPRINT_MAX_TOKENS,
    Fingerprint,
    FingerprintAnswer,
    FingerprintMismatch,
)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def compute_fingerprint(
    model: CatalogueModel, weights: Path, prompts: tuple[str, ...], *, top_logprobs: int = 5,
    threads: int = 0, max_tokens: int = FINGERPRINT_MAX_TOKENS,
    check_sha256: bool = True,
) -> Fingerprint:
    """Greedy answers of ``weights`` to ``prompts`` (drawn from a secret:
    :func:`coordinator.probes.fingerprint_prompts.fingerprint_prompts`), with top-k logprobs."""
    from agent.engines.base import GeneratedToken, GenerationRequest, ModelInfo
    from agent.engines.llama_cpp import LlamaCppEngine

    sha256 = file_sha256(weights)
    known = {w.sha256 for w in model.weights}
    if check_sha256 and known and sha256 not in known:
        raise FingerprintMismatch(
            f"{weights} has sha256 {sha256}, not one of {model.id}'s catalogue weights"
        )
    engine = LlamaCppEngine(ModelInfo(str(weights), sha256, 2048), n_threads=threads)
    answers: list[FingerprintAnswer] = []
    try:
        await engine.load()
        for prompt in prompts:
            messages = (ChatMessage(role="user", content=prompt),)
            params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
            tokens: list[TokenLogprob] = []
            async for event in engine.generate(GenerationRequest(messages, params, top_logprobs)):
                if isinstance(event, GeneratedToken) and event.logprob is not None:
                    tokens.append(event.logprob)
            answers.append(
                FingerprintAnswer(messages=messages, params=params, tokens=tuple(tokens))
            )
    finally:
        await engine.close()
    return Fingerprint(
        model=model.id, weights_sha256=sha256, engine=engine.name, top_logprobs=top_logprobs,
        answers=tuple(answers),
    )
