"""``POST /v1/chat/completions``: parse, authenticate, route, and stream or answer whole.

The response is committed (status and headers) only when the first token has arrived, so every
retry before it is invisible to the consumer, and errors before it are ordinary HTTP errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

import orjson
import pydantic
from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.catalogue import Price
from coordinator.economy.billing import (
    CallMeter,
    hold_for_call,
    prompt_token_estimate,
    settle_call,
    worst_case_cost,
)
from coordinator.errors import (
    CoordinatorError,
    InvalidRequest,
    ModelNotFound,
    NoCapacity,
    QueueFull,
    RequestTooLarge,
)
from coordinator.gateway.auth import require_api_key
from coordinator.gateway.completion import CompletionSpec, Finished, Piece, stream_completion
from coordinator.gateway.context import context_budget
from coordinator.gateway.demand import note_refused
from coordinator.gateway.models import require_chat_template
from coordinator.gateway.openai_types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    TokenLogprobOut,
    TopLogprobOut,
    Usage,
)
from coordinator.json_http import invalid_request
from coordinator.limits.enforce import stream_slot
from coordinator.services import SERVICES, Services
from protocol.chat import SamplingParams, TokenLogprob
from protocol.ids import ModelId

log = logging.getLogger(__name__)

NODE_HEADER = "X-Koretex-Node"
Pieces = AsyncGenerator[Piece | Finished, None]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    owner = await require_api_key(request)
    body = await _parse(request, services)
    async with stream_slot(request, owner.key_id):
        return await _complete(request, services, owner, body)


async def _complete(
    request: web.Request, services: Services, owner: KeyOwner, body: ChatCompletionRequest
) -> web.StreamResponse:
    spec, price = _spec(body, services)
    meter = CallMeter(model=spec.model, price=price, completion_id=_completion_id(),
                      prompt_estimate=prompt_token_estimate(spec.messages))
    pieces = stream_completion(services, spec)
    async with aclosing(pieces):
        # The credit hold is written while the node starts on the prompt, so it adds nothing to
        # time to first token; no byte reaches the consumer before both have succeeded.
        first_step = asyncio.ensure_future(anext(pieces))
        try:
            hold = await hold_for_call(
                services, owner, worst_case_cost(price, spec.messages, spec.params.max_tokens)
            )
        except BaseException:
            first_step.cancel()
            await asyncio.gather(first_step, return_exceptions=True)
            raise
        try:
            try:
                first = await first_step  # a CoordinatorError here is still a plain HTTP error
            except (NoCapacity, QueueFull):
                note_refused(request, services, owner, spec.model)
                raise
            if body.stream:
                return await _stream(request, body, pieces, first, meter)
            return await _whole(body, pieces, first, meter)
        finally:
            settle_call(services, hold, meter)


async def _parse(request: web.Request, services: Services) -> ChatCompletionRequest:
    limit = services.settings.max_request_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"request body exceeds {limit} bytes")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise RequestTooLarge(f"request body exceeds {limit} bytes")
    try:
        body = ChatCompletionRequest.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise invalid_request(exc, "body") from exc
    if len(body.messages) > services.settings.max_messages:
        raise InvalidRequest(
            f"at most {services.settings.max_messages} messages per request", param="messages"
        )
    return body


def _spec(body: ChatCompletionRequest, services: Services) -> tuple[CompletionSpec, Price]:
    priced = services.catalogue.get(body.model)
    if priced is None:
        raise ModelNotFound(f"the model {body.model!r} does not exist", param="model")
    require_chat_template(priced)
    messages = tuple(m.to_chat() for m in body.messages)
    model = ModelId(priced.id)
    # An omitted max_tokens is OpenAI's "up to the context": of the node chosen, and held for
    # at the largest context a live node offers.
    budget = context_budget(
        messages, body.requested_max_tokens(),
        largest_context=services.router.largest_context(model),
        catalogue_context=priced.model.context_length,
        max_tokens_limit=services.settings.max_tokens_limit,
    )
    params = SamplingParams(
        max_tokens=budget.max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=body.stop_sequences(),
        seed=body.seed,
    )
    top = (body.top_logprobs or 0) if body.logprobs else 0
    spec = CompletionSpec(
        model, messages, params, top, fill_context=budget.fill_context,
        prompt_floor=budget.prompt_floor,
    )
    return spec, priced.price


def _logprobs_out(logprobs: tuple[TokenLogprob, ...], top: int) -> list[TokenLogprobOut]:
    """The consumer's view: nodes always send ``job_top_logprobs`` alternatives; keep ``top``."""
    return [
        TokenLogprobOut(
            token=lp.token, logprob=lp.logprob, bytes=list(lp.token.encode()),
            top_logprobs=[
                TopLogprobOut(token=t.token, logprob=t.logprob, bytes=list(t.token.encode()))
                for t in lp.top[:top]
            ],
        )
        for lp in logprobs
    ]


async def _whole(
    body: ChatCompletionRequest, pieces: Pieces, first: Piece | Finished, meter: CallMeter
) -> web.Response:
    text: list[str] = []
    logprobs: list[TokenLogprobOut] = []
    item = first
    while not isinstance(item, Finished):
        text.append(item.text)
        meter.delivered(item.node_id, item.tokens)
        if body.logprobs:
            logprobs.extend(_logprobs_out(item.logprobs, body.top_logprobs or 0))
        item = await anext(pieces)
    _answered(meter, item)
    completion = ChatCompletion(
        id=meter.completion_id, created=int(time.time()), model=body.model,
        choices=[
            Choice(
                message=AssistantMessage(content="".join(text)),
                logprobs=ChoiceLogprobs(content=logprobs) if body.logprobs else None,
                finish_reason="length" if item.finish_reason == "length" else "stop",
            )
        ],
        usage=_usage(item),
    )
    return web.Response(
        text=completion.model_dump_json(), content_type="application/json",
        headers={NODE_HEADER: first.node_id},
    )


async def _stream(
    request: web.Request, body: ChatCompletionRequest, pieces: Pieces, first: Piece | Finished,
    meter: CallMeter,
) -> web.StreamResponse:
    headers = {
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        NODE_HEADER: first.node_id,
    }
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    encoder = _ChunkEncoder(meter.completion_id, int(time.time()), body.model)
    await response.write(encoder.role())
    item = first
    try:
        while not isinstance(item, Finished):
            lp = _logprobs_out(item.logprobs, body.top_logprobs or 0) if body.logprobs else None
            await response.write(encoder.content(item.text, lp))
            meter.delivered(item.node_id, item.tokens)
            item = await anext(pieces)
    except CoordinatorError as error:
        await response.write(b"data: " + json.dumps(error.body()).encode() + b"\n\n")
        return response
    _answered(meter, item)
    reason = "length" if item.finish_reason == "length" else "stop"
    await response.write(encoder.finish(reason))
    if body.stream_options is not None and body.stream_options.include_usage:
        await response.write(encoder.usage(_usage(item)))
    await response.write(b"data: [DONE]\n\n")
    return response


def _answered(meter: CallMeter, finished: Finished) -> None:
    """The call ended well: its prompt is billed, and the node that ended it is among those
    paid even when it gave no token (an empty answer is an answer)."""
    meter.prompt_tokens = finished.prompt_tokens
    meter.delivered(finished.node_id, 0)


def _usage(finished: Finished) -> Usage:
    return Usage(
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        total_tokens=finished.prompt_tokens + finished.completion_tokens,
    )


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_urlsafe(18)


class _ChunkEncoder:
    """SSE frames of ``chat.completion.chunk`` objects for one response.

    Frames are assembled around a pre-encoded envelope: only the changing part is encoded per
    token, which keeps the hot path cheap. Tests check every frame against ChatCompletionChunk.
    """

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        envelope = json.dumps(
            {"id": completion_id, "object": "chat.completion.chunk", "created": created,
             "model": model}
        )
        self._head = b"data: " + envelope[:-1].encode() + b', "choices": [{"index": 0, '
        self._envelope = envelope
        self._content_head = self._head + b'"delta": {"content": '
        self._content_tail = b'}, "logprobs": null, "finish_reason": null}]}\n\n'

    def _frame(self, choice_rest: str) -> bytes:
        return self._head + choice_rest.encode() + b"}]}\n\n"

    def role(self) -> bytes:
        return self._frame(
            '"delta": {"role": "assistant", "content": ""}, "logprobs": null, '
            '"finish_reason": null'
        )

    def content(self, text: str, logprobs: list[TokenLogprobOut] | None) -> bytes:
        if logprobs is None:  # the common case, once per token: one encode, one join
            return b"".join((self._content_head, orjson.dumps(text), self._content_tail))
        lp = "null"
        if logprobs is not None:
            lp = json.dumps({"content": [x.model_dump() for x in logprobs]})
        return self._frame(
            f'"delta": {{"content": {json.dumps(text)}}}, "logprobs": {lp}, '
            '"finish_reason": null'
        )

    def finish(self, reason: str) -> bytes:
        return self._frame(f'"delta": {{}}, "logprobs": null, "finish_reason": "{reason}"')

    def usage(self, usage: Usage) -> bytes:
        return (
            b"data: " + self._envelope[:-1].encode() + b', "choices": [], "usage": '
            + usage.model_dump_json().encode() + b"}\n\n"
        )
