"""What every engine must do, run on each: llama.cpp on the real Gemma 3 270M GGUF and MLX on a
tiny llama built here (skipped where mlx-lm is not installed).

A stream is tokens then exactly one finish; greedy answers repeat; max_tokens, stop strings and
the context length end or refuse a generation; top log-probabilities are sorted; a continuation
is answer, not prompt; a closed stream frees its slot promptly; two slots run side by side;
scoring refuses ids outside the vocabulary. Each engine's own behaviour is tested in its file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import pytest
from support.engines import COLOURS, COUNTING, Generation, drain, generate, request

from agent.engines.base import Engine, GeneratedToken, ScoringRequest
from agent.errors import ContextLengthExceeded, RequestRejected

# How closely the chosen token's log-probability matches the top alternative's under greedy
# decoding: llama.cpp reads them through two code paths, MLX from one array.
GREEDY_LOGPROB_TOLERANCE = {"llama.cpp": 1e-4, "mlx": 1e-5}


@pytest.fixture(scope="module", params=["llama_engine", "mlx_engine"], ids=["llama.cpp", "mlx"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each engine in turn (tests/agent/engines/conftest.py builds them)."""
    engine: Engine = request.getfixturevalue(request.param)
    return engine


async def test_streams_tokens_then_one_finish(colours: Generation) -> None:
    assert colours.text.strip()
    assert colours.finished.finish_reason == "length"
    assert colours.finished.completion_tokens == len(colours.tokens) == 24
    assert 3 < colours.finished.prompt_tokens < 40  # Gemma base: the text as written, BOS first
    assert all(token.logprob is None for token in colours.tokens)


async def test_greedy_decoding_is_deterministic(engine: Engine, colours: Generation) -> None:
    again = await generate(engine, request(COLOURS, max_tokens=24))
    assert again == colours


async def test_max_tokens_ends_the_generation_with_length(
    engine: Engine, colours: Generation
) -> None:
    short = await generate(engine, request(COLOURS, max_tokens=5))
    assert short.finished.finish_reason == "length"
    assert short.finished.completion_tokens == len(short.tokens) == 5
    assert short.tokens == colours.tokens[:5]


async def test_a_stop_string_cuts_the_output_before_it(
    engine: Engine, colours: Generation
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


async def test_top_logprobs_are_sorted_and_the_greedy_choice_leads(engine: Engine) -> None:
    tolerance = GREEDY_LOGPROB_TOLERANCE[engine.name]
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
        assert logprob.logprob == pytest.approx(logprob.top[0].logprob, abs=tolerance)
        assert len({alternative.token for alternative in logprob.top}) == 3


async def test_a_prompt_too_long_for_the_context_is_rejected(engine: Engine) -> None:
    context_length = engine.model.context_length
    long_prompt = " ".join(["colour"] * (context_length + 50))
    with pytest.raises(ContextLengthExceeded, match=str(context_length)):
        await generate(engine, request(long_prompt, max_tokens=8))


async def test_max_tokens_that_would_overflow_the_context_are_rejected(
    engine: Engine, colours: Generation
) -> None:
    room = engine.model.context_length - colours.finished.prompt_tokens
    with pytest.raises(ContextLengthExceeded):
        await generate(engine, request(COLOURS, max_tokens=room + 1))
    # The rejections handed their slots back: two generations can still run side by side.
    both = await asyncio.wait_for(
        asyncio.gather(*(generate(engine, request(COLOURS, max_tokens=3)) for _ in range(2))),
        timeout=60,
    )
    assert [g.tokens for g in both] == [colours.tokens[:3]] * 2


async def test_closing_the_stream_early_stops_promptly_and_frees_the_slot(
    engine: Engine, colours: Generation
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

        # Both slots were taken, so this runs only because the abandoned one was freed, and on
        # what it used (llama.cpp's context): a thread still generating there would corrupt it.
        reused = await asyncio.wait_for(
            generate(engine, request(COUNTING, max_tokens=12)), timeout=60
        )
        assert reused == counting
    finally:
        await held.aclose()


async def test_two_slots_generate_concurrently(engine: Engine, colours: Generation) -> None:
    counting = await generate(engine, request(COUNTING, max_tokens=12))
    first = engine.generate(request(COLOURS, max_tokens=24))
    second = engine.generate(request(COUNTING, max_tokens=12))
    assert isinstance(first, AsyncGenerator) and isinstance(second, AsyncGenerator)
    try:
        # Both are under way before either is read to its end: the second needs the other slot.
        assert await anext(first) == colours.tokens[0]
        assert await asyncio.wait_for(anext(second), timeout=60) == counting.tokens[0]
        rest = await asyncio.wait_for(asyncio.gather(drain(first), drain(second)), timeout=60)
    finally:
        await first.aclose()
        await second.aclose()
    assert [colours.tokens[0], *rest[0][:-1]] == list(colours.tokens)
    assert [counting.tokens[0], *rest[1][:-1]] == list(counting.tokens)
    assert rest[0][-1] == colours.finished and rest[1][-1] == counting.finished


async def test_a_continuation_resumes_the_answer(engine: Engine, colours: Generation) -> None:
    delivered = "".join(token.text for token in colours.tokens[:6])
    resumed = await generate(engine, request(COLOURS, max_tokens=8, continuation=delivered))
    assert resumed.text
    assert resumed.finished.completion_tokens == len(resumed.tokens) == 8
    # The continuation is part of the answer, not of the prompt.
    assert resumed.finished.prompt_tokens == colours.finished.prompt_tokens


async def test_scoring_refuses_ids_outside_the_vocabulary(engine: Engine) -> None:
    for outside in (10**7, 10**9):
        with pytest.raises(RequestRejected):
            await engine.score(ScoringRequest(
                messages=request(COUNTING).messages, text="x", token_ids=(outside,),
            ))
