"""``Job.fill_context`` reaches only nodes that understand it: its frame is unchanged when it is
off, and a node older than protocol version 3 is sent the fixed max_tokens it always got."""

from __future__ import annotations

import json

import pytest

from coordinator.hub.live import LEGACY_MAX_TOKENS, for_protocol
from protocol import FILL_CONTEXT_PROTOCOL_VERSION, SCORING_PROTOCOL_VERSION
from protocol.chat import ChatMessage, SamplingParams
from protocol.ids import JobId, ModelId
from protocol.messages import Job, decode_coordinator_message, encode


def job(max_tokens: int, *, fill_context: bool) -> Job:
    return Job(
        job_id=JobId("job-1"), model=ModelId("smollm2-135m-instruct"),
        messages=(ChatMessage(role="user", content="Hello"),),
        params=SamplingParams(max_tokens=max_tokens), fill_context=fill_context,
    )


def test_a_job_that_does_not_fill_the_context_is_framed_as_before() -> None:
    frame = json.loads(encode(job(64, fill_context=False)))
    assert "fill_context" not in frame
    filling = json.loads(encode(job(2000, fill_context=True)))
    assert filling["fill_context"] is True
    assert decode_coordinator_message(encode(job(2000, fill_context=True))) == job(
        2000, fill_context=True
    )


@pytest.mark.parametrize(
    ("version", "max_tokens", "fill_context", "expected_max", "expected_fill"),
    [
        (FILL_CONTEXT_PROTOCOL_VERSION, 2000, True, 2000, True),
        (SCORING_PROTOCOL_VERSION, 2000, True, LEGACY_MAX_TOKENS, False),
        (SCORING_PROTOCOL_VERSION, 100, True, 100, False),
        (SCORING_PROTOCOL_VERSION, 2000, False, 2000, False),  # explicit: untouched
    ],
)
def test_the_job_each_version_is_sent(
    version: int, max_tokens: int, fill_context: bool, expected_max: int, expected_fill: bool
) -> None:
    sent = for_protocol(job(max_tokens, fill_context=fill_context), version)
    assert isinstance(sent, Job)
    assert sent.params.max_tokens == expected_max
    assert sent.fill_context is expected_fill
    if version < FILL_CONTEXT_PROTOCOL_VERSION:
        assert "fill_context" not in json.loads(encode(sent))
