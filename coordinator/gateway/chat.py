"""``POST /v1/chat/completions``: parse into a completion spec, and write the answer as
OpenAI's chat completion (whole, or streamed as chunks); the paid call between is
:func:`~coordinator.gateway.call.paid_call`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import time
from dataclasses import dataclass, field

import orjson
import pydantic
from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.accounts.auth import require_api_key
from coordinator.catalogue import Price
from coordinator.errors import (
    CoordinatorError,
    InvalidRequest,
)
from coordinator.gateway.billing import CallMeter
from coordinator.gateway.call import Pieces, answered, paid_call, read_limited, sse_error
from coordinator.gateway.completion import CompletionSpec, Finished, Piece
from coordinator.gateway.models import request_budget, requested_model
from coordinator.gateway.needs import GATEWAY_NEEDS, GatewayNeeds
from coordinator.gateway.openai_types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkDelta,
    FinishReason,
    FunctionCalled,
    TokenLogprobOut,
    ToolCallDelta,
    ToolCallOut,
    TopLogprobOut,
    Usage,
)
from coordinator.gateway.sampling import answer_schema
from coordinator.gateway.tools import CallMade, ToolAnswer, read_tool_answer
from coordinator.json_http import invalid_request
from coordinator.limits.enforce import stream_slot
from protocol.chat import TokenLogprob
from protocol.ids import ModelId, NodeId

log = logging.getLogger(__name__)

NODE_HEADER = "X-Koretex-Node"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    services = request.app[GATEWAY_NEEDS]
    owner = await require_api_key(request)
    body = await _parse(request, services)
    async with stream_slot(request, owner.key_id):
        return await _complete(request, services, owner, body)


async def _complete(
    request: web.Request, services: GatewayNeeds, owner: KeyOwner, body: ChatCompletionRequest
) -> web.StreamResponse:
    spec, price = _spec(body, services)

    if body.n > 1:
        return await _several(request, services, owner, body, spec, price)

    async def answer(pieces: Pieces, first: Piece | Finished, meter: CallMeter) -> (
        web.StreamResponse
    ):
        if body.stream:
            return await _stream(request, body, pieces, first, meter)
        return await _whole(body, pieces, first, meter)

    return await paid_call(request, services, owner, spec, price, _completion_id(), answer)


async def _parse(request: web.Request, services: GatewayNeeds) -> ChatCompletionRequest:
    raw = await read_limited(request, services.settings.max_request_bytes)
    try:
        body = ChatCompletionRequest.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise invalid_request(exc, "body") from exc
    if len(body.messages) > services.settings.max_messages:
        raise InvalidRequest(
            f"at most {services.settings.max_messages} messages per request", param="messages"
        )
    return body


def _spec(body: ChatCompletionRequest, services: GatewayNeeds) -> tuple[CompletionSpec, Price]:
    priced = requested_model(services, body.model, chat=True)
    messages = tuple(m.to_chat() for m in body.messages)
    model = ModelId(priced.id)
    budget = request_budget(services, priced, messages, body.requested_max_tokens())
    shape = body.tool_answer_schema()
    if shape is None:
        shape = answer_schema(body.response_format)
    params = body.sampling(budget.max_tokens, shape)
    top = (body.top_logprobs or 0) if body.logprobs else 0
    spec = CompletionSpec(
        model, messages, params, top, fill_context=budget.fill_context,
        prompt_floor=budget.prompt_floor, tools=body.wire_tools(),
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


@dataclass
class _Collected:
    """One choice's whole answer, read before any of it is billed."""

    text: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprobOut] = field(default_factory=list)
    delivered: list[tuple[NodeId, int]] = field(default_factory=list)


async def _collect(
    body: ChatCompletionRequest, pieces: Pieces, first: Piece | Finished
) -> tuple[_Collected, Finished]:
    collected = _Collected()
    item = first
    while not isinstance(item, Finished):
        collected.text.append(item.text)
        collected.delivered.append((item.node_id, item.tokens))
        if body.logprobs:
            collected.logprobs.extend(_logprobs_out(item.logprobs, body.top_logprobs or 0))
        item = await anext(pieces)
    return collected, item


def _bill(meter: CallMeter, collected: _Collected, finished: Finished) -> None:
    for node_id, tokens in collected.delivered:
        meter.delivered(node_id, tokens)
    answered(meter, finished)


def _choice(
    body: ChatCompletionRequest, collected: _Collected, finished: Finished, index: int
) -> Choice:
    text = "".join(collected.text)
    reason: FinishReason = finished.finish_reason
    message = AssistantMessage(content=text)
    if body.tool_answer_schema() is not None:
        read = read_tool_answer(text, finished.finish_reason)
        message = AssistantMessage(content=read.content, tool_calls=_calls_out(read) or None)
        reason = read.finish_reason
    return Choice(
        index=index, message=message, finish_reason=reason,
        logprobs=ChoiceLogprobs(content=collected.logprobs) if body.logprobs else None,
    )


def _completion_response(
    body: ChatCompletionRequest, completion_id: str, choices: list[Choice], usage: Usage,
    node_id: str,
) -> web.Response:
    completion = ChatCompletion(
        id=completion_id, created=int(time.time()), model=body.model, choices=choices,
        usage=usage,
    )
    return web.Response(
        text=completion.model_dump_json(), content_type="application/json",
        headers={NODE_HEADER: node_id},
    )


async def _whole(
    body: ChatCompletionRequest, pieces: Pieces, first: Piece | Finished, meter: CallMeter
) -> web.Response:
    collected, finished = await _collect(body, pieces, first)
    _bill(meter, collected, finished)
    choice = _choice(body, collected, finished, 0)
    return _completion_response(
        body, meter.completion_id, [choice], usage_of(finished), first.node_id
    )


async def _several(
    request: web.Request, services: GatewayNeeds, owner: KeyOwner, body: ChatCompletionRequest,
    spec: CompletionSpec, price: Price,
) -> web.Response:
    """``n`` choices, each its own paid call (billed as n calls), answered together.

    A choice is billed only once every choice is whole: if one fails, the consumer gets the
    error and none of the answers, and pays for none of them.
    """
    completion_id = _completion_id()
    everyone_answered = asyncio.Barrier(body.n)
    results: dict[int, tuple[Choice, Finished, str]] = {}

    async def one(index: int) -> None:
        params = spec.params
        if params.seed is not None:  # reproducible, and each choice its own draw
            params = params.model_copy(update={"seed": params.seed + index})

        async def answer(pieces: Pieces, first: Piece | Finished, meter: CallMeter) -> (
            web.StreamResponse
        ):
            collected, finished = await _collect(body, pieces, first)
            await pieces.aclose()  # its node's slot is free for the choices still waiting
            await everyone_answered.wait()
            _bill(meter, collected, finished)
            results[index] = (_choice(body, collected, finished, index), finished, first.node_id)
            return web.Response()  # the consumer's response carries every choice at once

        await paid_call(
            request, services, owner, dataclasses.replace(spec, params=params), price,
            f"{completion_id}-{index}", answer,
        )

    try:
        async with asyncio.TaskGroup() as calls:
            for index in range(body.n):
                calls.create_task(one(index))
    except BaseExceptionGroup as failed:  # the consumer hears why the first choice failed
        raise failed.exceptions[0] from None
    ordered = [results[index] for index in range(body.n)]
    usage = Usage(
        prompt_tokens=sum(f.prompt_tokens for _, f, _ in ordered),
        completion_tokens=sum(f.completion_tokens for _, f, _ in ordered),
        total_tokens=sum(f.prompt_tokens + f.completion_tokens for _, f, _ in ordered),
    )
    return _completion_response(
        body, completion_id, [choice for choice, _, _ in ordered], usage, ordered[0][2]
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
    tool_answer: list[str] | None = [] if body.tool_answer_schema() is not None else None
    try:
        while not isinstance(item, Finished):
            if tool_answer is not None:  # its shape is known only once it is whole
                tool_answer.append(item.text)
            else:
                lp = (
                    _logprobs_out(item.logprobs, body.top_logprobs or 0) if body.logprobs
                    else None
                )
                await response.write(encoder.content(item.text, lp))
            meter.delivered(item.node_id, item.tokens)
            item = await anext(pieces)
    except CoordinatorError as error:
        await response.write(sse_error(error))
        return response
    answered(meter, item)
    reason: FinishReason = item.finish_reason
    if tool_answer is not None:
        read = read_tool_answer("".join(tool_answer), item.finish_reason)
        if read.calls:
            await response.write(encoder.tool_calls(read.calls))
        elif read.content:
            await response.write(encoder.content(read.content, None))
        reason = read.finish_reason
    await response.write(encoder.finish(reason))
    if body.stream_options is not None and body.stream_options.include_usage:
        await response.write(encoder.usage(usage_of(item)))
    await response.write(b"data: [DONE]\n\n")
    return response


def _calls_out(answer: ToolAnswer) -> list[ToolCallOut]:
    return [
        ToolCallOut(id=call.id, function=FunctionCalled(name=call.name, arguments=call.arguments))
        for call in answer.calls
    ]


def usage_of(finished: Finished) -> Usage:
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

    def tool_calls(self, calls: tuple[CallMade, ...]) -> bytes:
        """Every call in one delta, each whole (its name, id and all its arguments)."""
        delta = ChunkDelta(tool_calls=[
            ToolCallDelta(
                index=index, id=call.id, type="function",
                function=FunctionCalled(name=call.name, arguments=call.arguments),
            )
            for index, call in enumerate(calls)
        ])
        return self._frame(
            f'"delta": {delta.model_dump_json(exclude_none=True)}, "logprobs": null, '
            '"finish_reason": null'
        )

    def finish(self, reason: str) -> bytes:
        return self._frame(f'"delta": {{}}, "logprobs": null, "finish_reason": "{reason}"')

    def usage(self, usage: Usage) -> bytes:
        return (
            b"data: " + self._envelope[:-1].encode() + b', "choices": [], "usage": '
            + usage.model_dump_json().encode() + b"}\n\n"
        )
