"""The llama.cpp engine on the real Gemma 3 270M weights: streaming, sampling, stops, slots.

Outputs are learned from the model at run time (greedy first, then a property checked against
it), so the tests hold for whatever text these weights produce.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from agent.engines.base import (
    GeneratedToken,
    GenerationFinished,
    GenerationRequest,
    ModelInfo,
)
from agent.engines.chat_format import FORMATS, ChatFormat, render_gemma
from agent.engines.llama_cpp import LlamaCppEngine
from agent.errors import ContextLengthExceeded
from agent.models import file_sha256
from protocol.chat import ChatMessage, SamplingParams

CONTEXT_LENGTH = 512
COLOURS = "Name three colours."
COUNTING = "Count from one to ten."


@dataclass(frozen=True)
class Generation:
    tokens: tuple[GeneratedToken, ...]
    finished: GenerationFinished

    @property
    def text(self) -> str:
        return "".join(token.text for token in self.tokens)


def request(
    prompt: str, *, max_tokens: int = 16, stop: tuple[str, ...] = (), top_logprobs: int = 0,
    continuation: str = "",
) -> GenerationRequest:
    """A greedy request: temperature 0, so the answer is the model's, not the dice's."""
    return GenerationRequest(
        messages=(ChatMessage(role="user", content=prompt),),
        params=SamplingParams(max_tokens=max_tokens, temperature=0.0, stop=stop),
        top_logprobs=top_logprobs,
        continuation=continuation,
    )


async def generate(engine: LlamaCppEngine, generation: GenerationRequest) -> Generation:
    """Run one generation, checking the stream's shape: tokens, then exactly one finish."""
    events = [event async for event in engine.generate(generation)]
    assert events, "the stream ended without any event"
    *tokens, finished = events
    assert all(isinstance(token, GeneratedToken) for token in tokens)
    assert isinstance(finished, GenerationFinished)
    return Generation(tuple(tokens), finished)  # type: ignore[arg-type]


def model_info(path: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    with pytest.MonkeyPatch.context() as env:
        # Keep the digest cache out of the real user cache.
        env.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        digest = file_sha256(path)
    assert len(digest) == 64
    return ModelInfo(str(path), digest, context_length=CONTEXT_LENGTH)


@pytest_asyncio.fixture(scope="module")
async def engine(
    gemma_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LlamaCppEngine]:
    engine = LlamaCppEngine(model_info(gemma_path, tmp_path_factory), FORMATS["gemma"], slots=2)
    await engine.load()
    try:
        yield engine
    finally:
        await engine.close()


@pytest_asyncio.fixture(scope="module")
async def colours(engine: LlamaCppEngine) -> Generation:
    """The greedy answer to COLOURS, as the reference other tests compare against."""
    return await generate(engine, request(COLOURS, max_tokens=24))


async def test_streams_tokens_then_one_finish(colours: Generation) -> None:
    assert colours.text.strip()
    assert colours.finished.finish_reason == "length"
    assert colours.finished.completion_tokens == len(colours.tokens) == 24
    assert 5 < colours.finished.prompt_tokens < 40
    assert all(token.logprob is None for token in colours.tokens)


async def test_greedy_decoding_is_deterministic(
    engine: LlamaCppEngine, colours: Generation
) -> None:
    again = await generate(engine, request(COLOURS, max_tokens=24))
    assert again == colours


async def test_max_tokens_ends_the_generation_with_length(
    engine: LlamaCppEngine, colours: Generation
) -> None:
    short = await generate(engine, request(COLOURS, max_tokens=5))
    assert short.finished.finish_reason == "length"
    assert short.finished.completion_tokens == len(short.tokens) == 5
    assert short.tokens == colours.tokens[:5]


async def test_a_stop_string_cuts_the_output_before_it(
    engine: LlamaCppEngine, colours: Generation
) -> None:
    # A stop spanning two tokens of the known answer, so the engine must hold text back.
    stop = colours.tokens[3].text + colours.tokens[4].text
    cut = colours.text.find(stop)
    assert cut > 0, f"{stop!r} should occur after the start of {colours.text!r}"

    stopped = await generate(engine, request(COLOURS, max_tokens=24, stop=(stop,)))
    assert stopped.text == colours.text[:cut]
    assert stop not in stopped.text
    assert stopped.finished.finish_reason == "stop"
    assert stopped.finished.completion_tokens < 24


async def test_top_logprobs_are_sorted_and_the_greedy_choice_leads(engine: LlamaCppEngine) -> None:
    answer = await generate(engine, request(COLOURS, max_tokens=8, top_logprobs=3))
    assert len(answer.tokens) == 8
    for token in answer.tokens:
        logprob = token.logprob
        assert logprob is not None
        assert logprob.token == token.text  # this answer is plain ASCII, one piece per token
        assert len(logprob.top) == 3
        values = [alternative.logprob for alternative in logprob.top]
        assert values == sorted(values, reverse=True)
        assert all(value <= 0.0 for value in values)
        assert logprob.logprob <= logprob.top[0].logprob + 1e-4
        # Greedy decoding picks the most likely token, which is the top alternative.
        assert logprob.token == logprob.top[0].token
        assert logprob.logprob == pytest.approx(logprob.top[0].logprob, abs=1e-4)
        assert len({alternative.token for alternative in logprob.top}) == 3


async def test_a_prompt_too_long_for_the_context_is_rejected(engine: LlamaCppEngine) -> None:
    long_prompt = " ".join(["colour"] * (CONTEXT_LENGTH + 50))
    with pytest.raises(ContextLengthExceeded, match=str(CONTEXT_LENGTH)):
        await generate(engine, request(long_prompt, max_tokens=8))


async def test_max_tokens_that_would_overflow_the_context_are_rejected(
    engine: LlamaCppEngine, colours: Generation
) -> None:
    room = CONTEXT_LENGTH - colours.finished.prompt_tokens
    with pytest.raises(ContextLengthExceeded):
        await generate(engine, request(COLOURS, max_tokens=room + 1))
    # Both rejections handed their contexts back: two generations can still run side by side.
    both = await asyncio.wait_for(
        asyncio.gather(*(generate(engine, request(COLOURS, max_tokens=3)) for _ in range(2))),
        timeout=60,
    )
    assert [g.tokens for g in both] == [colours.tokens[:3]] * 2


async def test_closing_the_stream_early_stops_promptly_and_frees_the_slot(
    engine: LlamaCppEngine, colours: Generation
) -> None:
    counting = await generate(engine, request(COUNTING, max_tokens=12))

    abandoned = engine.generate(request(COLOURS, max_tokens=200))
    held = engine.generate(request(COLOURS, max_tokens=24))  # keeps the other slot busy
    assert isinstance(abandoned, AsyncGenerator)
    assert isinstance(held, AsyncGenerator)
    try:
        assert isinstance(await anext(held), GeneratedToken)
        first_two = [await anext(abandoned), await anext(abandoned)]
        assert first_two == list(colours.tokens[:2])

        closing_started = time.monotonic()
        await abandoned.aclose()
        assert time.monotonic() - closing_started < 2.0

        # Only the abandoned stream's context is free, so this runs on it: a thread still
        # generating there would corrupt the answer.
        reused = await asyncio.wait_for(
            generate(engine, request(COUNTING, max_tokens=12)), timeout=60
        )
        assert reused == counting
    finally:
        await held.aclose()


async def test_two_slots_generate_concurrently(
    engine: LlamaCppEngine, colours: Generation
) -> None:
    counting = await generate(engine, request(COUNTING, max_tokens=12))
    both = await asyncio.wait_for(
        asyncio.gather(
            generate(engine, request(COLOURS, max_tokens=24)),
            generate(engine, request(COUNTING, max_tokens=12)),
        ),
        timeout=60,
    )
    assert both == [colours, counting]


async def test_a_continuation_resumes_the_answer(
    engine: LlamaCppEngine, colours: Generation
) -> None:
    delivered = "".join(token.text for token in colours.tokens[:6])
    resumed = await generate(
        engine, request(COLOURS, max_tokens=8, continuation=delivered)
    )
    assert resumed.text
    assert delivered + resumed.text == "".join(token.text for token in colours.tokens[:14])
    assert resumed.finished.completion_tokens == 8
    # The continuation is part of the answer, not of the prompt.
    assert resumed.finished.prompt_tokens == colours.finished.prompt_tokens


# --- the model ending its own turn --------------------------------------------------------------

# Gemma 3 270M base never ends its turn on <end_of_turn> by itself, so a format whose turns end
# on a newline, which it emits readily, makes the model finish its answer on its own.
LINE_TURNS = ChatFormat("gemma-line-turns", render_gemma, "\n")


@pytest_asyncio.fixture(scope="module")
async def line_engine(
    gemma_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LlamaCppEngine]:
    engine = LlamaCppEngine(model_info(gemma_path, tmp_path_factory), LINE_TURNS, slots=1)
    try:
        yield engine
    finally:
        await engine.close()


async def test_the_end_of_the_turn_finishes_with_stop(
    line_engine: LlamaCppEngine, colours: Generation
) -> None:
    line = await generate(line_engine, request(COLOURS, max_tokens=24))
    assert line.finished.finish_reason == "stop"
    assert line.text == colours.text.split("\n")[0]
    assert line.finished.completion_tokens == len(line.tokens)


async def test_text_held_for_a_stop_is_released_when_the_turn_ends(
    line_engine: LlamaCppEngine, colours: Generation
) -> None:
    line = colours.text.split("\n")[0]
    # The answer's last two characters start this stop, which never completes.
    stop = line[-2:] + "\N{SNOWMAN}"
    answer = await generate(line_engine, request(COLOURS, max_tokens=24, stop=(stop,)))
    assert answer.finished.finish_reason == "stop"
    assert answer.text == line


async def test_scoring_an_answer_reproduces_its_generation_logprobs(
    engine: LlamaCppEngine,
) -> None:
    from agent.engines.base import ScoringRequest

    # Longer than one scoring chunk, so the batched continuation is read across chunks.
    answer = await generate(engine, request(COUNTING, max_tokens=40, top_logprobs=3))
    claimed = [token.logprob for token in answer.tokens if token.logprob is not None]
    ids = tuple(lp.token_id for lp in claimed if lp.token_id is not None)
    assert len(ids) == len(claimed) > 32
    scores = await engine.score(ScoringRequest(
        messages=request(COUNTING).messages, text=answer.text, token_ids=ids, top_logprobs=3,
    ))
    assert [s.token_id for s in scores] == list(ids)
    drifts = [
        abs(mine.logprob - theirs.logprob) for mine, theirs in zip(claimed, scores, strict=True)
    ]
    # Batched prefill against one-token decoding: float drift only, never a different model.
    assert max(drifts) < 0.5 and sum(drifts) / len(drifts) < 0.05
    assert all(len(s.top) == 3 for s in scores)

    by_text = await engine.score(ScoringRequest(
        messages=request(COUNTING).messages, text=answer.text, top_logprobs=3,
    ))
    assert "".join(s.token for s in by_text) == answer.text
    # The slot is clean afterwards: the same greedy answer again.
    assert (await generate(engine, request(COUNTING, max_tokens=40))).text == answer.text


async def test_scoring_refuses_ids_outside_the_vocabulary(engine: LlamaCppEngine) -> None:
    from agent.engines.base import ScoringRequest
    from agent.errors import RequestRejected

    with pytest.raises(RequestRejected):
        await engine.score(ScoringRequest(
            messages=request(COUNTING).messages, text="x", token_ids=(10**9,),
        ))
