"""Both checks on the real engine: honest drift passes, substituted weights are caught.

The "nodes" here are llama.cpp engines in this process, set up as different machines would be
(thread counts, batch sizes, context sizes); the verifier scores exactly as a trusted node does.
The full path through the coordinator and real agents is in test_authenticity_e2e.py.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support.fingerprints import reference_fingerprint_now

from agent.engines.base import GeneratedToken, GenerationRequest, ModelInfo, ScoringRequest
from agent.engines.llama_cpp import LlamaCppEngine
from coordinator.contributions import AuthenticityVerdict
from coordinator.hub.observation import JobObservation
from coordinator.probes.fingerprints import FingerprintSource
from coordinator.probes.plausibility import Comparison, compare
from coordinator.routing import Outcome
from coordinator.settings.authenticity import PlausibilityTolerances
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob
from protocol.fingerprint import Fingerprint
from protocol.ids import JobId, ModelId, NodeId
from protocol.messages import Job

pytestmark = pytest.mark.slow

MODEL = ModelId("gemma-3-270m")
TOLERANCES = PlausibilityTolerances()
PROMPTS = (
    "Tell me a fun fact about octopuses.",
    "How do I boil an egg?",
    "Write two sentences about the moon.",
)
MAX_CHECKS = 3  # a substitute must be caught within this many checks


def llama(path: Path, *, threads: int, batch: int, context: int) -> LlamaCppEngine:
    return LlamaCppEngine(
        ModelInfo(str(path), "", context), n_threads=threads, n_batch=batch
    )


@pytest_asyncio.fixture(scope="module")
async def verifier(gemma_path: Path) -> AsyncIterator[LlamaCppEngine]:
    engine = llama(gemma_path, threads=2, batch=256, context=1024)
    yield engine
    await engine.close()


@pytest.fixture(scope="module")
def fingerprint() -> Fingerprint:
    return reference_fingerprint_now(MODEL)


async def answer(
    engine: LlamaCppEngine, prompt: str, temperature: float, seed: int, max_tokens: int = 40
) -> tuple[tuple[ChatMessage, ...], list[TokenLogprob]]:
    messages = (ChatMessage(role="user", content=prompt),)
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    claimed = [
        event.logprob
        async for event in engine.generate(GenerationRequest(messages, params, top_logprobs=5))
        if isinstance(event, GeneratedToken) and event.logprob is not None
    ]
    return messages, claimed


async def rescore(
    node: LlamaCppEngine, verifier: LlamaCppEngine, prompt: str, temperature: float, seed: int
) -> Comparison:
    """One re-scoring check: the node answers, the verifier scores its tokens, the core rules."""
    messages, claimed = await answer(node, prompt, temperature, seed)
    ids = tuple(lp.token_id for lp in claimed if lp.token_id is not None)
    reference = await verifier.score(
        ScoringRequest(messages=messages, text="", token_ids=ids, top_logprobs=5)
    )
    return compare(claimed, reference, TOLERANCES)


async def fingerprint_checks(
    node: LlamaCppEngine, fingerprint: Fingerprint, count: int
) -> list[AuthenticityVerdict]:
    """``count`` fingerprint probes of the node, judged; the verdicts they record."""
    recorded: list[AuthenticityVerdict] = []
    source = FingerprintSource({MODEL: fingerprint}, TOLERANCES, recorded.append)
    rng = random.Random(5)
    for attempt in range(count):
        draw = source.draw(MODEL, rng)
        assert draw is not None and draw.judge is not None
        assert draw.params.temperature == 0.0
        _, claimed = await answer(
            node, draw.messages[-1].content, 0.0, 0, max_tokens=draw.params.max_tokens
        )
        job = Job(job_id=JobId(f"fp-{attempt}"), model=MODEL, messages=draw.messages,
                  params=draw.params, top_logprobs=5)
        draw.judge(JobObservation(
            node_id=NodeId("node"), job=job, probe=True, outcome=Outcome.SUCCESS,
            text="".join(t.token for t in claimed), logprobs=tuple(claimed), tokens=len(claimed),
            tok_s=None, finished_at=1.0,
        ))
    return recorded


@pytest.mark.parametrize(("threads", "batch", "context"), [(1, 512, 2048), (2, 64, 4096)])
async def test_honest_nodes_pass_rescoring_and_fingerprints(
    gemma_path: Path, verifier: LlamaCppEngine, fingerprint: Fingerprint,
    threads: int, batch: int, context: int,
) -> None:
    node = llama(gemma_path, threads=threads, batch=batch, context=context)
    try:
        for index, prompt in enumerate(PROMPTS):
            for temperature in (0.0, 1.0):
                result = await rescore(node, verifier, prompt, temperature, seed=index)
                assert result.verdict == "genuine", (prompt, temperature, result.reason)
        verdicts = await fingerprint_checks(node, fingerprint, 4)
        assert verdicts and all(v.genuine for v in verdicts)
    finally:
        await node.close()


@pytest.mark.parametrize("substitute", ["requantized_path", "tiny_path"])
async def test_a_substituted_model_is_caught_within_a_few_checks(
    request: pytest.FixtureRequest, substitute: str, verifier: LlamaCppEngine,
    fingerprint: Fingerprint,
) -> None:
    node = llama(request.getfixturevalue(substitute), threads=2, batch=512, context=2048)
    try:
        rescored = [
            await rescore(node, verifier, PROMPTS[i % len(PROMPTS)], 1.0, seed=i)
            for i in range(MAX_CHECKS)
        ]
        assert any(r.verdict == "substituted" for r in rescored), [r.reason for r in rescored]
        assert not any(r.verdict == "genuine" for r in rescored), [r.reason for r in rescored]
        verdicts = await fingerprint_checks(node, fingerprint, MAX_CHECKS)
        assert any(not v.genuine for v in verdicts)
    finally:
        await node.close()
