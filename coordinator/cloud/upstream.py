"""The OpenAI-compatible upstream's language, translated to and from the node protocol (pure).

A job becomes one streaming ``/chat/completions`` request; the server-sent events that come back
become ``TokenDelta`` events, then one ``JobDone`` or ``JobFailed``. An upstream's HTTP failures
are mapped to the protocol's failure codes: what the consumer's input caused stays neutral, what
the upstream caused (5xx, 429, timeouts, a refused token) counts against the cloud node.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from protocol.chat import ChatMessage, SamplingParams, TokenLogprob, TopLogprob
from protocol.constraints import ANY_JSON_OBJECT
from protocol.ids import JobId
from protocol.messages import FailureCode, Job, JobDone, JobFailed, TokenDelta
from protocol.tool_turns import tool_turns

JobEvent = TokenDelta | JobDone | JobFailed

NEUTRAL_STATUSES = frozenset({400, 413, 422})
"""Statuses an upstream answers when the request itself is unusable: the consumer's doing."""

_CONTEXT_HINTS = ("context length", "context_length", "context window", "maximum context",
                  "too many tokens", "exceeds the model", "n_ctx")
_DETAIL_CHARS = 300


class CannotResume(Exception):
    """The job asks what this upstream cannot do: continue a partial answer, or continue a raw
    prompt (it speaks chat completions only)."""


def chat_url(base_url: str) -> str:
    """The upstream's chat completions endpoint under its OpenAI base URL (``…/v1``)."""
    return base_url.rstrip("/") + "/chat/completions"


def request_body(job: Job, upstream_model: str, *, resume: bool) -> dict[str, Any]:
    """The streaming request that runs ``job`` on the upstream.

    A job resuming after another node failed carries the text already delivered; it is sent as
    a trailing assistant message that the upstream continues (vLLM's ``continue_final_message``).
    An upstream without that ability refuses such jobs: raises :class:`CannotResume`.
    """
    params = job.params
    if job.raw_prompt:
        raise CannotResume("this cloud node's upstream takes conversations, not raw prompts")
    messages: list[dict[str, str]] = [
        {"role": m.role, "content": m.content} for m in tool_turns(job.messages, job.tools)
    ]
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": messages,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if not job.fill_context:  # else the upstream's own default: up to its context
        body["max_tokens"] = params.max_tokens
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    body.update(steering_fields(params))
    if job.top_logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = job.top_logprobs
    if job.continuation:
        if not resume:
            raise CannotResume("this cloud node's upstream cannot continue a partial answer")
        messages.append({"role": "assistant", "content": job.continuation})
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    return body


def steering_fields(params: SamplingParams) -> dict[str, Any]:
    """The job's sampling extensions and constraint as OpenAI-compatible servers take them
    (OpenAI's own names; ``top_k``, ``min_p`` and the repetition penalty under vLLM's names and
    llama.cpp's), each only when it is not neutral."""
    fields: dict[str, Any] = {}
    if params.top_k:
        fields["top_k"] = params.top_k
    if params.min_p:
        fields["min_p"] = params.min_p
    if params.repetition_penalty != 1.0:
        fields["repetition_penalty"] = fields["repeat_penalty"] = params.repetition_penalty
    if params.presence_penalty:
        fields["presence_penalty"] = params.presence_penalty
    if params.frequency_penalty:
        fields["frequency_penalty"] = params.frequency_penalty
    if params.logit_bias:
        fields["logit_bias"] = {str(token): bias for token, bias in params.logit_bias.items()}
    if params.json_schema == ANY_JSON_OBJECT:
        fields["response_format"] = {"type": "json_object"}
    elif params.json_schema is not None:
        fields["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": params.json_schema, "strict": True},
        }
    return fields


def check_body(upstream_model: str) -> dict[str, Any]:
    """The one-token completion that proves an upstream answers before it is accepted."""
    return {
        "model": upstream_model,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 1,
        "temperature": 0.0,
        "stream": False,
    }


def estimate_prompt_tokens(messages: tuple[ChatMessage, ...]) -> int:
    """About four characters a token plus a few for each turn's markers; used only when the
    upstream does not report usage in its stream."""
    return sum(math.ceil(len(m.content) / 4) + 4 for m in messages)


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` masked, for messages that leave the relay."""
    return text.replace(secret, "[redacted]") if secret else text


def failure_for_status(status: int, body: str, secret: str) -> tuple[FailureCode, str]:
    """The failure code and message for an upstream's non-2xx answer."""
    if status in NEUTRAL_STATUSES:
        detail = redact(_error_detail(body), secret)
        lowered = detail.lower()
        code: FailureCode = (
            "context_length" if any(hint in lowered for hint in _CONTEXT_HINTS) else "bad_request"
        )
        return code, f"the model refused the request: {detail}" if detail else (
            "the model refused the request"
        )
    return "engine_error", f"cloud upstream answered HTTP {status}"


def _error_detail(body: str) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.strip()[:_DETAIL_CHARS]
    detail: object = parsed
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed.get("detail", parsed.get("message", "")))
        if isinstance(error, dict):
            error = error.get("message", "")
        detail = error
    return (detail if isinstance(detail, str) else json.dumps(detail))[:_DETAIL_CHARS]


MAX_SSE_EVENT_BYTES = 1_048_576
"""The most an upstream's server-sent event (or a line of it) may hold: a chunk of one token
is a few hundred bytes, and an upstream that sends more is not let grow the coordinator."""


class SseTooLarge(ValueError):
    """An upstream's event or line passed :data:`MAX_SSE_EVENT_BYTES`."""


class SseDecoder:
    """Server-sent events from a byte stream: ``feed`` returns each complete event's data."""

    def __init__(self, max_event_bytes: int = MAX_SSE_EVENT_BYTES) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._data_bytes = 0
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[str]:
        """Complete events' data; raises :class:`SseTooLarge` past the size bound."""
        self._buffer += chunk
        events: list[str] = []
        while True:
            line, found, rest = self._buffer.partition(b"\n")
            if not found:
                if len(self._buffer) > self._max:
                    raise SseTooLarge(f"upstream line exceeds {self._max} bytes")
                return events
            if len(line) + self._data_bytes > self._max:
                raise SseTooLarge(f"upstream event exceeds {self._max} bytes")
            self._buffer = rest
            text = line.rstrip(b"\r").decode("utf-8", errors="replace")
            if not text:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
                    self._data_bytes = 0
            elif text.startswith("data:"):
                value = text[5:]
                self._data.append(value[1:] if value.startswith(" ") else value)
                self._data_bytes += len(line)
            # comments (":…") and other fields (event:, id:, retry:) carry nothing we use

    def close(self) -> list[str]:
        """Whatever event was left unterminated when the stream ended."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        return events


@dataclass
class StreamTranslator:
    """One job's upstream stream turned into protocol events."""

    job_id: JobId
    prompt_estimate: int
    secret: str = ""
    tokens: int = 0
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    ended: bool = False

    def on_data(self, data: str) -> list[JobEvent]:
        """Events for one SSE data payload; the last ones end the job."""
        if self.ended:
            return []
        if data.strip() == "[DONE]":
            return self.on_end()
        try:
            chunk = json.loads(data)
        except ValueError:
            return self._fail("cloud upstream sent a malformed event")
        if not isinstance(chunk, dict):
            return self._fail("cloud upstream sent a malformed event")
        if "error" in chunk:
            return self._fail("cloud upstream reported an error mid-stream")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = {k: v for k, v in usage.items() if isinstance(v, int) and v >= 0}
        choices = chunk.get("choices") or []
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return []
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta") or {}
        text = delta.get("content") if isinstance(delta, dict) else None
        text = text if isinstance(text, str) else ""
        logprobs = _logprobs(choice.get("logprobs"))
        tokens = len(logprobs) if logprobs else (1 if text else 0)
        if not text and not tokens:
            return []
        self.tokens += tokens
        return [TokenDelta(job_id=self.job_id, text=text, tokens=tokens, logprobs=logprobs)]

    def on_end(self) -> list[JobEvent]:
        """The stream ended (``[DONE]`` or the body closed): the job's last event."""
        if self.ended:
            return []
        if self.finish_reason is None:
            return self._fail("cloud upstream ended the stream without finishing")
        self.ended = True
        return [JobDone(
            job_id=self.job_id,
            finish_reason="length" if self.finish_reason == "length" else "stop",
            prompt_tokens=self.usage.get("prompt_tokens", self.prompt_estimate),
            completion_tokens=self.usage.get("completion_tokens", self.tokens),
        )]

    def _fail(self, message: str, code: FailureCode = "engine_error") -> list[JobEvent]:
        self.ended = True
        return [JobFailed(job_id=self.job_id, code=code, message=redact(message, self.secret))]


def _logprobs(raw: object) -> tuple[TokenLogprob, ...]:
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return ()
    out: list[TokenLogprob] = []
    for entry in raw["content"]:
        if not isinstance(entry, dict) or not _finite(entry.get("logprob")):
            continue
        top = tuple(
            TopLogprob(token=str(alt.get("token", "")), logprob=float(alt["logprob"]))
            for alt in entry.get("top_logprobs") or ()
            if isinstance(alt, dict) and _finite(alt.get("logprob"))
        )
        out.append(TokenLogprob(
            token_id=None, token=str(entry.get("token", "")), logprob=float(entry["logprob"]),
            top=top,
        ))
    return tuple(out)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
