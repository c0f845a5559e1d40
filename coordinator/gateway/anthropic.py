"""``POST /v1/messages`` (Anthropic Messages) and ``POST /v1/messages/count_tokens``: the same
paid call as Chat Completions, written as Anthropic's message and its stream of events.

Keys are Koretex API keys, sent as ``x-api-key`` or as a bearer token; ``anthropic-version`` is
accepted whatever its value. Errors take Anthropic's shape (``gateway/errors.py``).
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.accounts.auth import require_api_key
from coordinator.catalogue import Price
from coordinator.errors import CoordinatorError
from coordinator.gateway.anthropic_types import (
    AnswerText,
    AnswerUsage,
    CountTokensRequest,
    InputTokens,
    MessageAnswer,
    MessagesRequest,
    answer_blocks,
    error_body,
    message_id,
)
from coordinator.gateway.billing import CallMeter
from coordinator.gateway.call import Pieces, answered, paid_call, read_request, read_whole
from coordinator.gateway.chat import NODE_HEADER
from coordinator.gateway.completion import CompletionSpec, Finished, Piece, stream_completion
from coordinator.gateway.models import request_budget, requested_model
from coordinator.gateway.needs import GATEWAY_NEEDS, GatewayNeeds
from coordinator.gateway.tools import answer_schema_for_tools, read_answer, read_tool_answer
from coordinator.limits.enforce import stream_slot
from protocol.ids import ModelId

Body = MessagesRequest | CountTokensRequest


async def messages(request: web.Request) -> web.StreamResponse:
    services = request.app[GATEWAY_NEEDS]
    owner = await require_api_key(request)
    body = await read_request(request, services, MessagesRequest)
    spec, price = _spec(body, services)
    async with stream_slot(request, owner.key_id):
        return await _answer(request, services, owner, body, spec, price)


async def count_tokens(request: web.Request) -> web.Response:
    """The prompt's tokens as a node counts them: its prefill, with one token generated and not
    billed (the answer is discarded)."""
    services = request.app[GATEWAY_NEEDS]
    await require_api_key(request)
    body = await read_request(request, services, CountTokensRequest)
    spec, _ = _spec(body, services)
    one_token = spec.params.model_copy(update={"max_tokens": 1, "json_schema": None})
    counting = CompletionSpec(spec.model, spec.messages, one_token, 0, tools=spec.tools,
                              prompt_floor=spec.prompt_floor)
    async with aclosing(stream_completion(services, counting)) as pieces:
        async for item in pieces:
            if isinstance(item, Finished):
                return web.Response(
                    text=InputTokens(input_tokens=item.prompt_tokens).model_dump_json(),
                    content_type="application/json",
                )
    raise CoordinatorError("the node ended without counting the prompt")


def _spec(body: Body, services: GatewayNeeds) -> tuple[CompletionSpec, Price]:
    priced = requested_model(services, body.model, chat=True)
    turns = body.conversation()
    model = ModelId(priced.id)
    budget = request_budget(services, priced, turns, body.max_tokens)
    tools = body.wire_tools()
    shape = answer_schema_for_tools(tools, body.chosen_tool(), parallel=body.parallel())
    if shape is None:
        shape = body.output_format()
    spec = CompletionSpec(
        model, turns, body.sampling(budget.max_tokens, shape), 0,
        prompt_floor=budget.prompt_floor, tools=tools,
    )
    return spec, priced.price


async def _answer(
    request: web.Request, services: GatewayNeeds, owner: KeyOwner, body: MessagesRequest,
    spec: CompletionSpec, price: Price,
) -> web.StreamResponse:
    with_tools = bool(spec.tools) and spec.params.json_schema is not None

    async def answer(pieces: Pieces, first: Piece | Finished, meter: CallMeter) -> (
        web.StreamResponse
    ):
        if body.stream:
            return await _Stream(request, body, meter, with_tools).write(pieces, first)
        text, finished = await read_whole(pieces, first, meter)
        blocks, reason = answer_blocks(
            read_answer(text, finished.finish_reason, with_tools=with_tools)
        )
        message = MessageAnswer(
            id=meter.completion_id, model=body.model, content=blocks, stop_reason=reason,
            usage=AnswerUsage(input_tokens=finished.prompt_tokens,
                              output_tokens=finished.completion_tokens),
        )
        return web.Response(
            text=message.model_dump_json(), content_type="application/json",
            headers={NODE_HEADER: first.node_id},
        )

    return await paid_call(request, services, owner, spec, price, message_id(), answer)


class _Stream:
    """Anthropic's event stream for one message: ``message_start``, content blocks, then
    ``message_delta`` with the stop reason and usage, and ``message_stop``."""

    def __init__(
        self, request: web.Request, body: MessagesRequest, meter: CallMeter, with_tools: bool
    ) -> None:
        self._request = request
        self._body = body
        self._meter = meter
        self._with_tools = with_tools
        self._response = web.StreamResponse()

    async def _event(self, kind: str, data: dict[str, Any]) -> None:
        payload = json.dumps({"type": kind, **data})
        await self._response.write(f"event: {kind}\ndata: {payload}\n\n".encode())

    async def write(self, pieces: Pieces, first: Piece | Finished) -> web.StreamResponse:
        response = self._response
        response.headers.update({
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            NODE_HEADER: first.node_id,
        })
        await response.prepare(self._request)
        start = MessageAnswer(
            id=self._meter.completion_id, model=self._body.model, content=[], stop_reason=None,
            usage=AnswerUsage(input_tokens=0, output_tokens=0),
        )
        await self._event("message_start", {"message": start.model_dump()})
        held: list[str] = []
        streaming_text = not self._with_tools
        if streaming_text:
            await self._block_start(0, AnswerText(text="").model_dump())
        await self._event("ping", {})
        item = first
        try:
            while not isinstance(item, Finished):
                if streaming_text:
                    await self._delta(0, {"type": "text_delta", "text": item.text})
                else:  # its shape is known only once it is whole
                    held.append(item.text)
                self._meter.delivered(item.node_id, item.tokens)
                item = await anext(pieces)
        except CoordinatorError as error:
            await self._event("error", error_body(error.status, error.message))
            return response
        answered(self._meter, item)
        if streaming_text:
            await self._event("content_block_stop", {"index": 0})
            reason = "max_tokens" if item.finish_reason == "length" else "end_turn"
        else:
            blocks, reason = answer_blocks(read_tool_answer("".join(held), item.finish_reason))
            await self._blocks(blocks)
        await self._event("message_delta", {
            "delta": {"stop_reason": reason, "stop_sequence": None},
            "usage": {"input_tokens": item.prompt_tokens,
                      "output_tokens": item.completion_tokens},
        })
        await self._event("message_stop", {})
        return response

    async def _blocks(self, blocks: list[Any]) -> None:
        for index, block in enumerate(blocks):
            if isinstance(block, AnswerText):
                await self._block_start(index, AnswerText(text="").model_dump())
                await self._delta(index, {"type": "text_delta", "text": block.text})
            else:
                await self._block_start(index, {**block.model_dump(), "input": {}})
                await self._delta(
                    index, {"type": "input_json_delta", "partial_json": json.dumps(block.input)}
                )
            await self._event("content_block_stop", {"index": index})

    async def _block_start(self, index: int, block: dict[str, Any]) -> None:
        await self._event("content_block_start", {"index": index, "content_block": block})

    async def _delta(self, index: int, delta: dict[str, Any]) -> None:
        await self._event("content_block_delta", {"index": index, "delta": delta})
