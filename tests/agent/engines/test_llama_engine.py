"""The llama.cpp engine on the real Gemma 3 270M weights, beyond the contract every engine keeps
(test_engine_contract.py beside it): continuing greedily, the model ending its own turn (on
SmolLM2 135M Instruct, whose GGUF carries its ChatML template), and batched scoring against
one-token decoding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support.engines import (
    COLOURS,
    COUNTING,
    Generation,
    closing,
    gemma_model_info,
    generate,
    request,
)

from agent.engines.base import ScoringRequest
from agent.engines.llama_cpp import SCORE_CHUNK, LlamaCppEngine


@pytest.fixture(scope="module")
def engine(llama_engine: LlamaCppEngine) -> LlamaCppEngine:
    """The engine of this module's ``colours`` (tests/agent/engines/conftest.py)."""
    return llama_engine


async def test_a_continuation_carries_on_the_greedy_answer(
    llama_engine: LlamaCppEngine, colours: Generation
) -> None:
    delivered = "".join(token.text for token in colours.tokens[:6])
    resumed = await generate(
        llama_engine, request(COLOURS, max_tokens=8, continuation=delivered)
    )
    # Re-tokenizing the delivered text changes nothing: the same greedy answer carries on.
    assert delivered + resumed.text == "".join(token.text for token in colours.tokens[:14])


# --- the model ending its own turn --------------------------------------------------------------

# Gemma 3 270M base has no chat template and never ends a turn; SmolLM2 Instruct ends its turn
# on <|im_end|>, its end-of-generation token.
FRANCE = "Name the capital of France."


@pytest_asyncio.fixture(scope="module")
async def instruct_engine(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LlamaCppEngine]:
    info = gemma_model_info(smollm2_path, tmp_path_factory)
    async with closing(LlamaCppEngine(info, slots=1)) as engine:
        yield engine


@pytest_asyncio.fixture(scope="module")
async def france(instruct_engine: LlamaCppEngine) -> Generation:
    return await generate(instruct_engine, request(FRANCE, max_tokens=48))


async def test_the_end_of_the_turn_finishes_with_stop(france: Generation) -> None:
    assert france.finished.finish_reason == "stop"
    assert "Paris" in france.text
    assert "<|im_end|>" not in france.text
    assert france.finished.completion_tokens == len(france.tokens)


async def test_text_held_for_a_stop_is_released_when_the_turn_ends(
    instruct_engine: LlamaCppEngine, france: Generation
) -> None:
    # The answer's last two characters start this stop, which never completes.
    stop = france.text[-2:] + "\N{SNOWMAN}"
    answer = await generate(instruct_engine, request(FRANCE, max_tokens=48, stop=(stop,)))
    assert answer.finished.finish_reason == "stop"
    assert answer.text == france.text


async def test_a_continuation_follows_the_rendered_generation_prompt(
    instruct_engine: LlamaCppEngine, france: Generation
) -> None:
    delivered = "".join(token.text for token in france.tokens[:4])
    resumed = await generate(
        instruct_engine, request(FRANCE, max_tokens=48, continuation=delivered)
    )
    assert delivered + resumed.text == france.text
    # Usage counts the consumer's prompt, not the continued text.
    assert resumed.finished.prompt_tokens == france.finished.prompt_tokens


async def test_scoring_an_answer_reproduces_its_generation_logprobs(
    llama_engine: LlamaCppEngine,
) -> None:
    # Longer than one scoring chunk, so the batched continuation is read across chunks.
    answer = await generate(llama_engine, request(COUNTING, max_tokens=40, top_logprobs=3))
    claimed = [token.logprob for token in answer.tokens if token.logprob is not None]
    ids = tuple(lp.token_id for lp in claimed if lp.token_id is not None)
    assert len(ids) == len(claimed) > SCORE_CHUNK
    scores = await llama_engine.score(ScoringRequest(
        messages=request(COUNTING).messages, text=answer.text, token_ids=ids, top_logprobs=3,
    ))
    assert [s.token_id for s in scores] == list(ids)
    drifts = [
        abs(mine.logprob - theirs.logprob) for mine, theirs in zip(claimed, scores, strict=True)
    ]
    # Batched prefill against one-token decoding: float drift only, never a different model.
    assert max(drifts) < 0.5 and sum(drifts) / len(drifts) < 0.05
    assert all(len(s.top) == 3 for s in scores)

    by_text = await llama_engine.score(ScoringRequest(
        messages=request(COUNTING).messages, text=answer.text, top_logprobs=3,
    ))
    assert "".join(s.token for s in by_text) == answer.text
    # The slot is clean afterwards: the same greedy answer again.
    assert (await generate(llama_engine, request(COUNTING, max_tokens=40))).text == answer.text
