"""Structured output and the sampling extensions, end to end: the official openai client, the real
coordinator and a real SmolLM2 agent on llama.cpp.

A ``json_schema`` answer validates against its schema every time, a ``json_object`` answer is a
JSON object, and the sampling parameters reach the engine (each one's effect on the engines
themselves is tested in tests/agent/engines/test_sampling_contract.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import openai
import pytest
from support.cluster import AgentProcess, RunningCoordinator

MODEL = "smollm2-135m-instruct"


PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"enum": ["Paris", "London", "Rome"]},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
PERSON_FORMAT: Any = {
    "type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True},
}


async def test_json_schema_answers_validate_twenty_times_out_of_twenty(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    # A few at a time: the node has two slots, and twenty at once would wait in the queue past
    # its limit on a loaded machine (validation is the point here, not load).
    in_flight = asyncio.Semaphore(4)

    async def ask(seed: int) -> str:
        async with in_flight:
            return await asked(seed)

    async def asked(seed: int) -> str:
        completion = await client.chat.completions.create(
            model=MODEL, response_format=PERSON_FORMAT, max_tokens=60, temperature=0.8,
            seed=seed, messages=[{"role": "user", "content": "Invent a person who lives in a"
                                  " European capital. Answer in JSON."}],
        )
        assert completion.choices[0].finish_reason == "stop"
        content = completion.choices[0].message.content
        assert content is not None
        return content

    answers = await asyncio.gather(*(ask(seed) for seed in range(20)))
    for answer in answers:
        jsonschema.validate(json.loads(answer), PERSON)
    assert len(set(answers)) > 1, "twenty seeds, one answer: the sampler was not used"


async def test_a_streamed_json_schema_answer_validates(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    stream = await client.chat.completions.create(
        model=MODEL, response_format=PERSON_FORMAT, max_tokens=60, temperature=0, stream=True,
        messages=[{"role": "user", "content": "Describe Ann, 31, from Rome, in JSON."}],
    )
    text = "".join([
        chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices
    ])
    jsonschema.validate(json.loads(text), PERSON)


async def test_json_object_answers_are_json_objects(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    completion = await client.chat.completions.create(
        model=MODEL, response_format={"type": "json_object"}, max_tokens=80, temperature=0,
        messages=[{"role": "user", "content": "List two colours as a JSON object."}],
    )
    content = completion.choices[0].message.content
    assert content is not None
    if completion.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)
    else:  # cut at max_tokens: still the start of an object
        assert content.startswith("{")


async def test_sampling_extensions_reach_the_engine(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    prompt: Any = [{"role": "user", "content": "Name the capital of France."}]
    greedy = await client.chat.completions.create(
        model=MODEL, messages=prompt, max_tokens=12, temperature=0, logprobs=True, top_logprobs=1
    )
    assert greedy.choices[0].logprobs is not None and greedy.choices[0].logprobs.content
    first = greedy.choices[0].logprobs.content[0].token
    # top_k=1 (an extension, as vLLM takes it) makes a hot temperature greedy.
    for seed in (1, 2):
        hot = await client.chat.completions.create(
            model=MODEL, messages=prompt, max_tokens=12, temperature=1.9, seed=seed,
            extra_body={"top_k": 1},
        )
        assert hot.choices[0].message.content == greedy.choices[0].message.content
    # A bias of -100 on nothing the answer uses leaves it; the consumer's bias is honoured.
    forced = await client.chat.completions.create(
        model=MODEL, messages=prompt, max_tokens=4, temperature=0, logit_bias={"100": 100},
    )
    content = forced.choices[0].message.content
    assert content is not None and content != greedy.choices[0].message.content
    assert not content.startswith(first)
    # Penalties change a greedy answer that repeats itself.
    repeat: Any = [{"role": "user", "content": "Count from one to twenty with words, repeating"
                    " each number twice."}]
    plain = await client.chat.completions.create(
        model=MODEL, messages=repeat, max_tokens=40, temperature=0
    )
    penalised = await client.chat.completions.create(
        model=MODEL, messages=repeat, max_tokens=40, temperature=0, frequency_penalty=2.0,
        presence_penalty=2.0,
    )
    assert penalised.choices[0].message.content != plain.choices[0].message.content


async def test_a_bias_outside_the_vocabulary_is_a_400_naming_logit_bias(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
            logit_bias={"99999999": 5},
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "logit_bias"
    assert "vocabulary" in error["message"]
