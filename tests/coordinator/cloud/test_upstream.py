"""The cloud relay's pure core: SSE in, protocol events out; HTTP failures mapped; tokens sealed."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.cloud.addresses import literal_host_is_private
from coordinator.cloud.sealing import (
    MasterKeyInvalid,
    SealBroken,
    TokenSealer,
    last_four,
    new_master_key,
    parse_master_key,
)
from coordinator.cloud.upstream import (
    CannotResume,
    SseDecoder,
    StreamTranslator,
    chat_url,
    failure_for_status,
    request_body,
)
from protocol.chat import ChatMessage, SamplingParams
from protocol.ids import JobId, ModelId
from protocol.messages import Job, JobDone, JobFailed, TokenDelta

JOB = JobId("job-1")
SECRET = "sk-live-0123456789abcdef"


def chunk(content: str | None = None, *, finish: str | None = None,
          logprobs: list[dict[str, object]] | None = None) -> str:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish,
              "logprobs": None if logprobs is None else {"content": logprobs}}
    return json.dumps({"object": "chat.completion.chunk", "choices": [choice]})


def job(continuation: str = "", top_logprobs: int = 5) -> Job:
    return Job(
        job_id=JOB, model=ModelId("gemma-3-270m"),
        messages=(ChatMessage(role="user", content="Hello there"),),
        params=SamplingParams(max_tokens=16, temperature=0.5, stop=("\n",), seed=7),
        top_logprobs=top_logprobs, continuation=continuation,
    )


# --- SSE ------------------------------------------------------------------------------------------


def test_sse_decoder_joins_events_split_anywhere() -> None:
    stream = b"data: one\r\n\r\n: a comment\nevent: x\ndata: two\ndata: lines\n\ndata: [DONE]\n\n"
    for cut in range(len(stream)):
        decoder = SseDecoder()
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) + decoder.close()
        assert events == ["one", "two\nlines", "[DONE]"], cut


def test_sse_decoder_keeps_an_unterminated_last_event() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: {}") == []
    assert decoder.close() == ["{}"]


@given(
    st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"),
                     max_size=20), max_size=8),
    st.integers(min_value=1, max_value=7),
)
def test_sse_decoder_any_chunking(payloads: list[str], size: int) -> None:
    stream = "".join(f"data: {p}\n\n" for p in payloads).encode()
    decoder = SseDecoder()
    events: list[str] = []
    for start in range(0, len(stream), size):
        events += decoder.feed(stream[start:start + size])
    events += decoder.close()
    assert events == payloads


# --- translation ----------------------------------------------------------------------------------


def test_stream_becomes_deltas_with_logprobs_then_done() -> None:
    translator = StreamTranslator(JOB, prompt_estimate=9)
    top = [{"token": "Hi", "logprob": -0.1}, {"token": "Hello", "logprob": -2.5}]
    events = [
        *translator.on_data(json.dumps({"choices": [{"delta": {"role": "assistant"}}]})),
        *translator.on_data(chunk("Hi", logprobs=[{"token": "Hi", "logprob": -0.1,
                                                   "top_logprobs": top}])),
        *translator.on_data(chunk(" there")),
        *translator.on_data(chunk(finish="length")),
        *translator.on_data("[DONE]"),
    ]
    assert [type(e) for e in events] == [TokenDelta, TokenDelta, JobDone]
    first, second, done = events
    assert isinstance(first, TokenDelta) and isinstance(second, TokenDelta)
    assert first.text == "Hi" and first.tokens == 1
    assert first.logprobs[0].token_id is None and first.logprobs[0].logprob == -0.1
    assert [t.token for t in first.logprobs[0].top] == ["Hi", "Hello"]
    assert second.text == " there" and second.tokens == 1 and second.logprobs == ()
    assert done == JobDone(job_id=JOB, finish_reason="length", prompt_tokens=9,
                           completion_tokens=2)
    assert translator.on_data(chunk("late")) == []


def test_usage_reported_by_the_upstream_wins_over_the_estimate() -> None:
    translator = StreamTranslator(JOB, prompt_estimate=9)
    translator.on_data(chunk("a", finish="stop"))
    translator.on_data(json.dumps({"choices": [], "usage": {"prompt_tokens": 31,
                                                            "completion_tokens": 1}}))
    (done,) = translator.on_end()
    assert done == JobDone(job_id=JOB, finish_reason="stop", prompt_tokens=31,
                           completion_tokens=1)


@pytest.mark.parametrize("data", ["{not json", "[1]", json.dumps({"error": {"message": SECRET}})])
def test_malformed_or_error_events_fail_the_job_without_the_token(data: str) -> None:
    translator = StreamTranslator(JOB, prompt_estimate=1, secret=SECRET)
    (failed,) = translator.on_data(data)
    assert isinstance(failed, JobFailed) and failed.code == "engine_error"
    assert SECRET not in failed.message
    assert translator.on_end() == []


def test_a_stream_cut_before_it_finishes_is_a_failure() -> None:
    translator = StreamTranslator(JOB, prompt_estimate=1)
    translator.on_data(chunk("half"))
    (failed,) = translator.on_end()
    assert isinstance(failed, JobFailed) and failed.code == "engine_error"


def test_non_finite_logprobs_are_dropped() -> None:
    translator = StreamTranslator(JOB, prompt_estimate=1)
    (delta,) = translator.on_data(chunk("x", logprobs=[
        {"token": "x", "logprob": -1.0, "top_logprobs": [{"token": "y", "logprob": None}]},
        {"token": "z", "logprob": "nan"},
    ]))
    assert isinstance(delta, TokenDelta) and delta.tokens == 1 and delta.logprobs[0].top == ()


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "code"), [
    (400, '{"error": {"message": "messages must not be empty"}}', "bad_request"),
    (422, '{"detail": [{"msg": "field required"}]}', "bad_request"),
    (400, '{"error": {"message": "This model\'s maximum context length is 2048"}}',
     "context_length"),
    (413, "request too large", "bad_request"),
    (401, '{"detail": "Invalid API key"}', "engine_error"),
    (403, "", "engine_error"),
    (404, "model not found", "engine_error"),
    (408, "", "engine_error"),
    (429, '{"error": {"message": "rate limited"}}', "engine_error"),
    (500, "boom", "engine_error"),
    (502, "", "engine_error"),
    (503, "", "engine_error"),
])
def test_failure_mapping(status: int, body: str, code: str) -> None:
    got, message = failure_for_status(status, body, SECRET)
    assert got == code
    assert SECRET not in message


def test_upstream_detail_echoing_the_token_is_redacted() -> None:
    _, message = failure_for_status(400, json.dumps({"error": f"bad key {SECRET} here"}), SECRET)
    assert SECRET not in message and "[redacted]" in message


# --- requests -------------------------------------------------------------------------------------


def test_request_body_carries_the_job_and_asks_for_logprobs() -> None:
    body = request_body(job(), "meta/llama-3", resume=False)
    assert body["model"] == "meta/llama-3" and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "Hello there"}]
    assert body["max_tokens"] == 16 and body["temperature"] == 0.5 and body["seed"] == 7
    assert body["stop"] == ["\n"] and body["logprobs"] is True and body["top_logprobs"] == 5
    assert "continue_final_message" not in body


def test_resumption_is_a_trailing_assistant_message_or_refused() -> None:
    body = request_body(job("Once upon"), "m", resume=True)
    assert body["messages"][-1] == {"role": "assistant", "content": "Once upon"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    with pytest.raises(CannotResume):
        request_body(job("Once upon"), "m", resume=False)


def test_chat_url_under_the_base() -> None:
    assert chat_url("https://host/v1/") == "https://host/v1/chat/completions"


# --- sealing --------------------------------------------------------------------------------------


def test_master_key_in_hex_or_base64() -> None:
    raw = bytes(range(32))
    assert parse_master_key(raw.hex()) == raw
    assert parse_master_key(base64.b64encode(raw).decode()) == raw
    assert parse_master_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert len(parse_master_key(new_master_key())) == 32
    for bad in ("", "short", raw.hex()[:-2], base64.b64encode(bytes(31)).decode()):
        with pytest.raises(MasterKeyInvalid):
            parse_master_key(bad)


def test_sealed_tokens_open_only_under_their_key() -> None:
    sealer = TokenSealer.from_setting(new_master_key())
    sealed = sealer.seal(SECRET)
    assert SECRET.encode() not in sealed and sealer.open(sealed) == SECRET
    assert sealer.seal(SECRET) != sealed  # a fresh nonce every time
    with pytest.raises(SealBroken) as caught:
        TokenSealer.from_setting(new_master_key()).open(sealed)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert last_four(SECRET) == "cdef"


# --- addresses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "private"), [
    ("http://127.0.0.1:8000/v1", True), ("http://localhost/v1", True),
    ("http://api.localhost/v1", True), ("http://10.0.0.7/v1", True),
    ("http://192.168.1.2/v1", True), ("http://169.254.169.254/v1", True),
    ("http://[::1]/v1", True), ("http://[fd00::1]/v1", True), ("http://100.64.0.1/v1", True),
    ("https://8.8.8.8/v1", False), ("https://api.example.com/v1", False),
])
def test_literal_private_hosts(url: str, private: bool) -> None:
    assert literal_host_is_private(url) is private
