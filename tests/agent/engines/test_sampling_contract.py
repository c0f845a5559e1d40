"""Every sampling parameter changes a generation as documented, on each engine: llama.cpp on the
real Gemma 3 270M GGUF and MLX on the tiny llama (tests/agent/engines/conftest.py).

Each is tested by its effect against the greedy reference answer (``colours``): a bias forces or
forbids a token, top_k=1 and min_p=1 reduce any temperature to the greedy choice, penalties move
the answer off its repeats, and a JSON schema makes every answer parse and validate.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from support.engines import COLOURS, Generation, generate, request

from agent.engines.base import Engine, GenerationRequest
from agent.engines.shaping import ConstraintRejected, LogitBiasRejected
from protocol.chat import ChatMessage, SamplingParams

FORCED_TOKEN = 100  # an ordinary token in both vocabularies


@pytest.fixture(scope="module", params=["llama_engine", "mlx_engine"], ids=["llama.cpp", "mlx"])
def engine(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(request.param)
    return engine


def shaped(max_tokens: int = 24, **params: Any) -> GenerationRequest:
    base = request(COLOURS, max_tokens=max_tokens)
    return GenerationRequest(
        base.messages, base.params.model_copy(update=params), base.top_logprobs
    )


def texts(generation: Generation) -> list[str]:
    return [token.text for token in generation.tokens]


async def test_a_large_positive_bias_forces_its_token_at_every_step(engine: Engine) -> None:
    forced = await generate(engine, shaped(max_tokens=6, logit_bias={FORCED_TOKEN: 100.0}))
    pieces = texts(forced)
    assert len(pieces) == 6 and len(set(pieces)) == 1, pieces


async def test_a_large_negative_bias_forbids_the_greedy_choice(
    engine: Engine, colours: Generation
) -> None:
    first = await generate(engine, shaped(max_tokens=1, top_logprobs=0))
    greedy = colours.tokens[0].text
    assert first.tokens[0].text == greedy
    # The greedy first token's id: the bias that moves the first token off it.
    answer = await generate(engine, GenerationRequest(
        (ChatMessage(role="user", content=COLOURS),),
        SamplingParams(max_tokens=1, temperature=0.0), top_logprobs=1,
    ))
    assert answer.tokens[0].logprob is not None
    token_id = answer.tokens[0].logprob.token_id
    assert token_id is not None
    banned = await generate(engine, shaped(max_tokens=1, logit_bias={token_id: -100.0}))
    assert banned.tokens[0].text != greedy


async def test_a_bias_outside_the_vocabulary_is_refused_naming_logit_bias(engine: Engine) -> None:
    with pytest.raises(LogitBiasRejected) as refused:
        await generate(engine, shaped(logit_bias={10_000_000: 5.0}))
    assert refused.value.param == "logit_bias"


@pytest.mark.parametrize("cut", [{"top_k": 1}, {"min_p": 1.0}], ids=["top_k=1", "min_p=1"])
async def test_a_cut_to_the_likeliest_token_makes_any_temperature_greedy(
    engine: Engine, colours: Generation, cut: dict[str, Any]
) -> None:
    for seed in (1, 2, 3):
        hot = await generate(engine, shaped(temperature=1.8, seed=seed, **cut))
        assert texts(hot) == texts(colours)


async def test_without_a_cut_a_high_temperature_leaves_the_greedy_answer(
    engine: Engine, colours: Generation
) -> None:
    answers = [texts(await generate(engine, shaped(temperature=1.8, seed=seed)))
               for seed in (1, 2, 3)]
    assert any(answer != texts(colours) for answer in answers)


@pytest.mark.parametrize("penalty", [
    {"presence_penalty": 2.0}, {"frequency_penalty": 2.0}, {"repetition_penalty": 3.0},
], ids=["presence", "frequency", "repetition"])
async def test_a_penalty_moves_a_greedy_answer_off_its_repeats(
    engine: Engine, penalty: dict[str, float]
) -> None:
    plain = await generate(engine, shaped(max_tokens=48))
    assert len(set(texts(plain))) < len(plain.tokens), "the reference answer repeats a token"
    penalised = await generate(engine, shaped(max_tokens=48, **penalty))
    assert texts(penalised) != texts(plain)
    repeats = len(plain.tokens) - len(set(texts(plain)))
    assert len(penalised.tokens) - len(set(texts(penalised))) <= repeats


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "colour": {"enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
        "bright": {"type": "boolean"},
    },
    "required": ["colour", "count", "bright"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("temperature", [0.0, 1.0])
async def test_a_json_schema_makes_every_answer_valid_json(
    engine: Engine, temperature: float
) -> None:
    for seed in range(3):
        answer = await generate(engine, shaped(
            max_tokens=40, json_schema=SCHEMA, temperature=temperature, seed=seed
        ))
        text = "".join(texts(answer))
        jsonschema.validate(json.loads(text), SCHEMA)
        assert answer.finished.finish_reason == "stop"


async def test_a_constrained_answer_continues_under_its_constraint(engine: Engine) -> None:
    whole = await generate(engine, shaped(max_tokens=40, json_schema=SCHEMA))
    text = "".join(texts(whole))
    cut = text.index(",") + 1  # the first member delivered, as by a node that then died
    base = shaped(max_tokens=40, json_schema=SCHEMA)
    resumed = await generate(engine, GenerationRequest(
        base.messages, base.params, continuation=text[:cut]
    ))
    assert text[:cut] + "".join(texts(resumed)) == text


async def test_a_continuation_outside_the_schema_is_refused(engine: Engine) -> None:
    base = shaped(max_tokens=10, json_schema=SCHEMA)
    with pytest.raises(ConstraintRejected):
        await generate(engine, GenerationRequest(
            base.messages, base.params, continuation='{"shade":'
        ))
