"""A greedy answer is the same whatever its slot ran before, on this machine's own CPU kernels.

llama.cpp's logits depend on the shape of the batches a prompt is evaluated in (the AVX-512
kernels sum in an order of their own), so an engine that kept the prefix a previous request
shares with this one, and evaluated only the rest, answered differently after other requests
than when fresh. Fingerprint probes compare a node's greedy answer, logprobs included, with a
reference: an honest node must never drift from it because of its own cache. Equality here is
exact, text byte for byte and every logprob to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from support.engines import COLOURS, COUNTING, Generation, closing, gemma_model_info, generate

from agent.engines.base import GeneratedToken, GenerationRequest, ModelInfo, ScoringRequest
from agent.engines.llama_cpp import LlamaCppEngine
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob

# Prompts of several lengths: which lengths drift depends on the CPU's kernels (on this AVX-512
# host a cached prefix changed the haiku's first token); every one must hold on every machine.
PROBES = (
    "Write a haiku about autumn leaves.",
    "Explain in two sentences why the sky is blue.",
    "List the planets of the solar system in order from the sun, with one fact about each.",
)

# What a slot may have run before the probe: other prompts short and long, greedy and sampled,
# a conversation and a continuation that share the probe's prompt as their prefix (the case
# where llama-cpp-python reused the cache), a stream abandoned early, and a scoring.
LONG_PROMPT = " ".join(
    f"Item {i}: a {colour} box holds {i * 3} marbles."
    for i, colour in enumerate(["red", "green", "blue", "amber", "violet", "white"] * 3)
)


def _greedy(
    messages: Sequence[ChatMessage], *, max_tokens: int, top_logprobs: int = 5,
    continuation: str = "", temperature: float = 0.0,
) -> GenerationRequest:
    return GenerationRequest(
        messages=tuple(messages),
        params=SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=7),
        top_logprobs=top_logprobs,
        continuation=continuation,
    )


def _user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def _probe(prompt: str) -> GenerationRequest:
    return _greedy([_user(prompt)], max_tokens=16)


async def _run_unrelated(engine: LlamaCppEngine, probe: str, count: int) -> None:
    """``count`` requests other than ``probe``, in an order that mixes their lengths."""
    unrelated = [
        # The probe's prompt is this conversation's prefix: the longest cached prefix of all.
        lambda: generate(engine, _greedy(
            [_user(probe), ChatMessage(role="assistant", content="Because of Rayleigh."),
             _user("Say more.")], max_tokens=11, top_logprobs=0,
        )),
        lambda: generate(engine, _greedy([_user(LONG_PROMPT)], max_tokens=12, top_logprobs=2)),
        lambda: generate(engine, _greedy([_user("Hi")], max_tokens=3, temperature=0.9)),
        lambda: _abandon(engine, _greedy([_user(COUNTING)], max_tokens=100)),
        lambda: engine.score(ScoringRequest(
            messages=(_user(COLOURS),), text=" Red, green and blue.", top_logprobs=3,
        )),
        lambda: generate(engine, _greedy(
            [_user(probe)], max_tokens=6, continuation=" The", top_logprobs=0,
        )),
    ]
    for run in unrelated[:count]:
        await run()


async def _abandon(engine: LlamaCppEngine, generation: GenerationRequest) -> None:
    stream = engine.generate(generation)
    try:
        for _ in range(3):
            assert isinstance(await anext(stream), GeneratedToken)
    finally:
        await stream.aclose()


def _logprobs(answer: Generation) -> list[TokenLogprob]:
    logprobs = [token.logprob for token in answer.tokens if token.logprob is not None]
    assert len(logprobs) == len(answer.tokens), "every token should carry its logprob"
    return logprobs


@pytest.fixture(scope="module")
def engine_info(gemma_path: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    return gemma_model_info(gemma_path, tmp_path_factory)


def _engine(info: ModelInfo) -> LlamaCppEngine:
    # One slot: every request runs on the one context the probe then answers on.
    return LlamaCppEngine(info, slots=1)


async def test_a_greedy_answer_is_the_same_after_0_1_and_5_other_requests(
    engine_info: ModelInfo,
) -> None:
    fresh: list[Generation] = []
    for probe in PROBES:
        async with closing(_engine(engine_info)) as engine:
            fresh.append(await generate(engine, _probe(probe)))
    for count in (1, 5):
        async with closing(_engine(engine_info)) as engine:
            for probe, reference in zip(PROBES, fresh, strict=True):
                await _run_unrelated(engine, probe, count)
                later = await generate(engine, _probe(probe))
                assert len(reference.tokens) == 16 and reference.text.strip()
                assert later.text.encode() == reference.text.encode(), (count, probe)
                # Exact: the same floats, not close ones, for the token and every alternative.
                assert _logprobs(later) == _logprobs(reference), (count, probe)
                assert later == reference


async def test_repeating_a_greedy_request_repeats_it_exactly(engine_info: ModelInfo) -> None:
    # The same request again, and again after a longer answer to it: its prompt is then all
    # cached, with answer tokens after it.
    async with closing(_engine(engine_info)) as engine:
        for probe in PROBES:
            first = await generate(engine, _probe(probe))
            again = await generate(engine, _probe(probe))
            await generate(engine, _greedy([_user(probe)], max_tokens=24))
            third = await generate(engine, _probe(probe))
            assert again == first, probe
            assert third == first, probe


async def test_a_scoring_is_the_same_after_other_requests(engine_info: ModelInfo) -> None:
    probe = _probe(PROBES[0])
    async with closing(_engine(engine_info)) as engine:
        answer = await generate(engine, probe)
        ids = tuple(lp.token_id for lp in _logprobs(answer) if lp.token_id is not None)
        scoring = ScoringRequest(
            messages=probe.messages, text=answer.text, token_ids=ids, top_logprobs=5,
        )
        first = await engine.score(scoring)
        await _run_unrelated(engine, PROBES[0], 5)
        later = await engine.score(scoring)
    assert [s.token_id for s in first] == list(ids)
    assert later == first
    # The prompt is evaluated as a generation evaluates it: the first scored token's figures
    # are those its generation reported.
    assert first[0] == _logprobs(answer)[0]
