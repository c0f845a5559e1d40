"""Every wire message survives encoding, and nothing outside the vocabulary decodes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.chat import ChatMessage, SamplingParams, TokenLogprob, TopLogprob, WireModel
from protocol.ids import JobId, ModelId, NodeId
from protocol.messages import (
    Cancel,
    Challenge,
    Draining,
    Hardware,
    Job,
    JobDone,
    JobFailed,
    ModelOffer,
    Register,
    Registered,
    TokenDelta,
    decode_coordinator_message,
    decode_node_message,
    encode,
)

text = st.text(max_size=30)
counts = st.integers(0, 1_000_000)  # within every count's wire bound (MAX_TOKEN_COUNT, cores)
floats = st.floats(allow_nan=False, allow_infinity=False)
job_ids = text.map(JobId)
model_ids = text.map(ModelId)

hardware = st.builds(
    Hardware, system=text, machine=text, chip=text, cores=counts,
    memory_bytes=st.integers(0, 1 << 40),
    gpu=st.none() | text,
)
offers = st.builds(
    ModelOffer, model=model_ids, weights_sha256=st.none() | text,
    context_length=st.integers(1, 1 << 20),
)
top_logprobs = st.builds(TopLogprob, token=text, logprob=floats)
token_logprobs = st.builds(
    TokenLogprob, token_id=counts, token=text, logprob=floats,
    top=st.lists(top_logprobs, max_size=3).map(tuple),
)
chat_messages = st.builds(
    ChatMessage, role=st.sampled_from(["system", "user", "assistant"]), content=text
)
sampling = st.builds(
    SamplingParams, max_tokens=st.integers(1, 1 << 20), temperature=st.floats(0.0, 2.0),
    top_p=st.floats(0.0, 1.0, exclude_min=True), stop=st.lists(text, max_size=4).map(tuple),
    seed=st.none() | st.integers(-(1 << 40), 1 << 40),
)

node_messages: st.SearchStrategy[WireModel] = st.one_of(
    st.builds(
        Register, protocol_version=st.integers(0, 10), node_id=text.map(NodeId), nonce=text,
        issued_at=text, signature=text, agent_version=text, engine=text,
        models=st.lists(offers, min_size=1, max_size=4).map(tuple), slots=st.integers(1, 256),
        declared_tok_s=st.none() | st.floats(0, 1e6), hardware=hardware,
        enrollment_token=st.none() | text,
    ),
    st.builds(
        TokenDelta, job_id=job_ids, text=text, tokens=counts,
        logprobs=st.lists(token_logprobs, max_size=3).map(tuple),
    ),
    st.builds(
        JobDone, job_id=job_ids, finish_reason=st.sampled_from(["stop", "length"]),
        prompt_tokens=counts, completion_tokens=counts,
    ),
    st.builds(
        JobFailed, job_id=job_ids,
        code=st.sampled_from(
            ["bad_request", "context_length", "busy", "unsupported_model", "engine_error",
             "cancelled", "draining"]
        ),
        message=st.text(max_size=2000),
    ),
    st.just(Draining()),
)

coordinator_messages: st.SearchStrategy[WireModel] = st.one_of(
    st.builds(
        Challenge, protocol_version=st.integers(0, 10), domain=text, nonce=text,
        server_time=text,
    ),
    st.builds(Registered, node_id=text.map(NodeId), operator=st.none() | text),
    st.builds(
        Job, job_id=job_ids, model=model_ids,
        messages=st.lists(chat_messages, min_size=1, max_size=4).map(tuple), params=sampling,
        top_logprobs=st.integers(0, 20), continuation=text,
    ),
    st.builds(Cancel, job_id=job_ids),
)

Decoder = Callable[[str | bytes], Any]
BOTH_WAYS: list[tuple[st.SearchStrategy[WireModel], Decoder, Decoder]] = [
    (node_messages, decode_node_message, decode_coordinator_message),
    (coordinator_messages, decode_coordinator_message, decode_node_message),
]
directions = pytest.mark.parametrize(
    ("messages", "decode", "decode_other"), BOTH_WAYS, ids=["node", "coordinator"]
)


@directions
@settings(deadline=None)
@given(data=st.data())
def test_every_message_round_trips(
    messages: st.SearchStrategy[WireModel], decode: Decoder, decode_other: Decoder,
    data: st.DataObject,
) -> None:
    message = data.draw(messages)
    frame = encode(message)
    decoded = decode(frame)
    assert type(decoded) is type(message)
    assert decoded == message
    assert decode(frame.encode()) == message


@directions
@settings(deadline=None)
@given(data=st.data())
def test_a_message_is_not_understood_by_the_other_side(
    messages: st.SearchStrategy[WireModel], decode: Decoder, decode_other: Decoder,
    data: st.DataObject,
) -> None:
    with pytest.raises(pydantic.ValidationError):
        decode_other(encode(data.draw(messages)))


@directions
@settings(deadline=None)
@given(data=st.data(), tag=st.text(max_size=20))
def test_an_unknown_type_is_rejected(
    messages: st.SearchStrategy[WireModel], decode: Decoder, decode_other: Decoder,
    data: st.DataObject, tag: str,
) -> None:
    body = json.loads(encode(data.draw(messages)))
    known = {"register", "delta", "done", "failed", "draining", "challenge", "registered", "job",
             "cancel"}
    body["type"] = tag if tag not in known else tag + "?"
    with pytest.raises(pydantic.ValidationError):
        decode(json.dumps(body))
    del body["type"]
    with pytest.raises(pydantic.ValidationError):
        decode(json.dumps(body))


@directions
@settings(deadline=None)
@given(data=st.data(), name=st.text(min_size=1, max_size=20))
def test_an_extra_field_is_rejected(
    messages: st.SearchStrategy[WireModel], decode: Decoder, decode_other: Decoder,
    data: st.DataObject, name: str,
) -> None:
    message = data.draw(messages)
    body = json.loads(encode(message))
    if name in body:
        name += "_extra"
    body[name] = 1
    with pytest.raises(pydantic.ValidationError):
        decode(json.dumps(body))


@pytest.mark.parametrize(
    ("frame", "decode"),
    [
        # Extra fields are refused inside nested models too.
        (
            {"type": "job", "job_id": "j", "model": "m",
             "messages": [{"role": "user", "content": "Hi", "name": "x"}],
             "params": {"max_tokens": 1}},
            decode_coordinator_message,
        ),
        (
            {"type": "job", "job_id": "j", "model": "m",
             "messages": [{"role": "user", "content": "Hi"}],
             "params": {"max_tokens": 1, "frequency_penalties": {}}},
            decode_coordinator_message,
        ),
        (
            {"type": "delta", "job_id": "j", "text": "a", "tokens": 1,
             "logprobs": [{"token_id": 1, "token": "a", "logprob": -1.0, "bytes": []}]},
            decode_node_message,
        ),
        # Values outside their ranges.
        (
            {"type": "job", "job_id": "j", "model": "m",
             "messages": [{"role": "user", "content": "Hi"}],
             "params": {"max_tokens": 1, "presence_penalty": 3.0}},
            decode_coordinator_message,
        ),
        ({"type": "delta", "job_id": "j", "text": "a", "tokens": -1}, decode_node_message),
        (
            {"type": "failed", "job_id": "j", "code": "tired", "message": ""},
            decode_node_message,
        ),
        (
            {"type": "job", "job_id": "j", "model": "m", "messages": [],
             "params": {"max_tokens": 1}},
            decode_coordinator_message,
        ),
        (
            {"type": "job", "job_id": "j", "model": "m",
             "messages": [{"role": "robot", "content": "Hi"}], "params": {"max_tokens": 1}},
            decode_coordinator_message,
        ),
    ],
)
def test_nested_and_out_of_range_content_is_rejected(
    frame: dict[str, Any], decode: Decoder
) -> None:
    with pytest.raises(pydantic.ValidationError):
        decode(json.dumps(frame))


def test_frames_that_are_not_json_objects_are_rejected() -> None:
    for frame in ("", "null", "[]", '"register"', "{"):
        with pytest.raises(pydantic.ValidationError):
            decode_node_message(frame)
        with pytest.raises(pydantic.ValidationError):
            decode_coordinator_message(frame)


def test_messages_are_immutable() -> None:
    message = Cancel(job_id=JobId("j"))
    with pytest.raises(pydantic.ValidationError):
        message.job_id = JobId("k")  # type: ignore[misc]


@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens"])
def test_a_job_done_claiming_more_tokens_than_any_context_is_refused(field: str) -> None:
    import pydantic

    from protocol.messages import MAX_TOKEN_COUNT, JobDone, decode_node_message

    honest = {"type": "done", "job_id": "job-1", "finish_reason": "stop",
              "prompt_tokens": 12, "completion_tokens": 3}
    assert isinstance(decode_node_message(json.dumps(honest)), JobDone)
    for claim in (2**40, MAX_TOKEN_COUNT + 1, -1):
        with pytest.raises(pydantic.ValidationError):
            decode_node_message(json.dumps({**honest, field: claim}))
    lying_delta = {"type": "delta", "job_id": "job-1", "text": "x", "tokens": 2**40}
    with pytest.raises(pydantic.ValidationError):
        decode_node_message(json.dumps(lying_delta))
