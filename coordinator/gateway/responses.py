"""``POST /v1/responses`` (OpenAI Responses), ``GET`` and ``DELETE /v1/responses/{id}``: the same
paid call as Chat Completions, written as a response object or its semantic events.

Stateless by default: ``store: true`` keeps the response for the API key that asked (for
``responses_retention_days``), so ``previous_response_id`` can continue it and ``GET`` can read
it; another key finds nothing (404).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.accounts.auth import require_api_key
from coordinator.catalogue import Price
from coordinator.errors import CoordinatorError, InvalidRequest, NotFound
from coordinator.gateway.billing import CallMeter
from coordinator.gateway.call import Pieces, answered, paid_call, read_request, read_whole
from coordinator.gateway.chat import NODE_HEADER
from coordinator.gateway.completion import CompletionSpec, Finished, Piece
from coordinator.gateway.models import request_budget, requested_model
from coordinator.gateway.needs import GATEWAY_NEEDS, GatewayNeeds
from coordinator.gateway.responses_types import (
    ResponseDeleted,
    ResponseRequest,
    answered_turns,
    item_id,
    message_item,
    output_items,
    output_text,
    response_id,
)
from coordinator.gateway.tools import ToolAnswer, answer_schema_for_tools, read_answer
from coordinator.limits.enforce import stream_slot
from coordinator.store.responses import delete_response, load_response, save_response
from protocol.chat import ChatMessage
from protocol.ids import ModelId


async def create_response(request: web.Request) -> web.StreamResponse:
    services = request.app[GATEWAY_NEEDS]
    owner = await require_api_key(request)
    body = await read_request(request, services, ResponseRequest)
    earlier = await _earlier_turns(services, owner, body)
    turns = (*_instructions(body), *earlier, *body.turns())
    spec, price = _spec(body, services, turns)
    async with stream_slot(request, owner.key_id):
        conversation = [*earlier, *body.turns()]
        return await _answer(request, services, owner, body, spec, price, conversation)


async def get_response(request: web.Request) -> web.Response:
    services = request.app[GATEWAY_NEEDS]
    owner = await require_api_key(request)
    stored = await load_response(
        services.database, request.match_info["response_id"], owner.key_id, services.clock.now()
    )
    if stored is None:
        raise NotFound(f"no response {request.match_info['response_id']!r}", param="response_id")
    return web.json_response(stored.body)


async def remove_response(request: web.Request) -> web.Response:
    services = request.app[GATEWAY_NEEDS]
    owner = await require_api_key(request)
    found = request.match_info["response_id"]
    if not await delete_response(services.database, found, owner.key_id):
        raise NotFound(f"no response {found!r}", param="response_id")
    return web.Response(
        text=ResponseDeleted(id=found, deleted=True).model_dump_json(),
        content_type="application/json",
    )


def _instructions(body: ResponseRequest) -> tuple[ChatMessage, ...]:
    if not body.instructions:
        return ()
    return (ChatMessage(role="system", content=body.instructions),)


async def _earlier_turns(
    services: GatewayNeeds, owner: KeyOwner, body: ResponseRequest
) -> list[ChatMessage]:
    if body.previous_response_id is None:
        return []
    stored = await load_response(
        services.database, body.previous_response_id, owner.key_id, services.clock.now()
    )
    if stored is None:
        raise NotFound(
            f"no response {body.previous_response_id!r} to continue (it was not stored, has "
            "expired, or belongs to another key)", param="previous_response_id",
        )
    return [ChatMessage.model_validate(turn) for turn in stored.conversation]


def _spec(
    body: ResponseRequest, services: GatewayNeeds, turns: tuple[ChatMessage, ...]
) -> tuple[CompletionSpec, Price]:
    priced = requested_model(services, body.model, chat=True)
    if len(turns) > services.settings.max_messages:
        raise InvalidRequest(
            f"at most {services.settings.max_messages} turns per response, earlier ones "
            "included", param="input",
        )
    model = ModelId(priced.id)
    budget = request_budget(services, priced, turns, body.max_output_tokens)
    tools = body.wire_tools()
    shape = answer_schema_for_tools(
        tools, body.chosen_tool(), parallel=body.parallel_tool_calls is not False
    )
    if shape is None:
        shape = body.answer_format()
    spec = CompletionSpec(
        model, turns, body.sampling(budget.max_tokens, shape), 0,
        fill_context=budget.fill_context, prompt_floor=budget.prompt_floor, tools=tools,
    )
    return spec, priced.price


async def _answer(
    request: web.Request, services: GatewayNeeds, owner: KeyOwner, body: ResponseRequest,
    spec: CompletionSpec, price: Price, conversation: list[ChatMessage],
) -> web.StreamResponse:
    envelope = _Envelope(body, response_id(), int(time.time()))

    async def answer(pieces: Pieces, first: Piece | Finished, meter: CallMeter) -> (
        web.StreamResponse
    ):
        writer = _Events(request, envelope, bool(spec.tools))
        if body.stream:
            answer, final = await writer.write(pieces, first, meter)
        else:
            text, finished = await read_whole(pieces, first, meter)
            answer = read_answer(text, finished.finish_reason, with_tools=bool(spec.tools))
            final = envelope.done(answer, finished)
        if answer is not None and body.store:
            await _store(services, owner, envelope.id, conversation, answer, final)
        if body.stream:
            return writer.response
        return web.Response(
            text=json.dumps(final), content_type="application/json",
            headers={NODE_HEADER: first.node_id},
        )

    return await paid_call(request, services, owner, spec, price, envelope.id, answer)


async def _store(
    services: GatewayNeeds, owner: KeyOwner, response: str, conversation: list[ChatMessage],
    answer: ToolAnswer, final: dict[str, Any],
) -> None:
    turns = [*conversation, *answered_turns(answer)]
    now = services.clock.now()
    await save_response(
        services.database, response_id=response, api_key_id=owner.key_id, now=now,
        expires=now + timedelta(days=services.settings.responses_retention_days),
        conversation=[turn.model_dump(mode="json") for turn in turns], body=final,
    )


class _Envelope:
    """The response object around its output: the request's settings echoed, status, usage."""

    def __init__(self, body: ResponseRequest, identity: str, created: int) -> None:
        self.body = body
        self.id = identity
        self.created = created

    def object(self, status: str, output: list[dict[str, Any]],
               finished: Finished | None = None) -> dict[str, Any]:
        body = self.body
        usage = None
        if finished is not None:
            usage = {
                "input_tokens": finished.prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": finished.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": finished.prompt_tokens + finished.completion_tokens,
            }
        choice = body.tool_choice
        return {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "model": body.model, "output": output, "usage": usage, "error": None,
            "incomplete_details": (
                {"reason": "max_output_tokens"} if status == "incomplete" else None
            ),
            "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id, "store": body.store,
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "tool_choice": choice.model_dump() if choice is not None and not isinstance(
                choice, str) else (choice or "auto"),
            "tools": [tool.model_dump(exclude_none=True) for tool in body.tools or ()],
            "text": {"format": (
                body.text.format.model_dump(by_alias=True)
                if body.text is not None and body.text.format is not None else {"type": "text"}
            )},
            "truncation": "disabled", "metadata": body.metadata or {}, "user": body.user,
        }

    def done(self, answer: ToolAnswer, finished: Finished) -> dict[str, Any]:
        status = "incomplete" if answer.finish_reason == "length" else "completed"
        return self.object(status, output_items(answer), finished)


class _Events:
    """The semantic events of one streamed response, each with its sequence number."""

    def __init__(self, request: web.Request, envelope: _Envelope, with_tools: bool) -> None:
        self._request = request
        self._envelope = envelope
        self._with_tools = with_tools
        self._sequence = 0
        self.response = web.StreamResponse()

    async def _event(self, kind: str, **data: Any) -> None:
        payload = json.dumps({"type": kind, "sequence_number": self._sequence, **data})
        self._sequence += 1
        await self.response.write(f"event: {kind}\ndata: {payload}\n\n".encode())

    async def write(
        self, pieces: Pieces, first: Piece | Finished, meter: CallMeter
    ) -> tuple[ToolAnswer | None, dict[str, Any]]:
        self.response.headers.update({
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            NODE_HEADER: first.node_id,
        })
        await self.response.prepare(self._request)
        started = self._envelope.object("in_progress", [])
        await self._event("response.created", response=started)
        await self._event("response.in_progress", response=started)
        message = item_id("msg")
        if not self._with_tools:
            await self._event("response.output_item.added", output_index=0,
                              item=message_item("", "in_progress", message))
            await self._event("response.content_part.added", item_id=message, output_index=0,
                              content_index=0, part=output_text(""))
        text: list[str] = []
        item = first
        try:
            while not isinstance(item, Finished):
                text.append(item.text)
                if not self._with_tools:
                    await self._event("response.output_text.delta", item_id=message,
                                      output_index=0, content_index=0, delta=item.text,
                                      logprobs=[])
                meter.delivered(item.node_id, item.tokens)
                item = await anext(pieces)
        except CoordinatorError as error:
            failed = self._envelope.object("failed", [])
            failed["error"] = {"code": "server_error", "message": error.message}
            await self._event("response.failed", response=failed)
            return None, failed
        answered(meter, item)
        answer = read_answer("".join(text), item.finish_reason, with_tools=self._with_tools)
        final = self._envelope.done(answer, item)
        if self._with_tools:
            await self._items(final["output"])
        else:
            final["output"][0]["id"] = message
            whole = "".join(text)
            await self._event("response.output_text.done", item_id=message, output_index=0,
                              content_index=0, text=whole, logprobs=[])
            await self._event("response.content_part.done", item_id=message, output_index=0,
                              content_index=0, part=output_text(whole))
            await self._event("response.output_item.done", output_index=0,
                              item=final["output"][0])
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        await self._event(kind, response=final)
        return answer, final

    async def _items(self, output: list[dict[str, Any]]) -> None:
        for index, item in enumerate(output):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                await self._event("response.output_item.added", output_index=index,
                                  item=message_item("", "in_progress", item["id"]))
                await self._event("response.content_part.added", item_id=item["id"],
                                  output_index=index, content_index=0, part=output_text(""))
                await self._event("response.output_text.delta", item_id=item["id"],
                                  output_index=index, content_index=0, delta=text, logprobs=[])
                await self._event("response.output_text.done", item_id=item["id"],
                                  output_index=index, content_index=0, text=text, logprobs=[])
                await self._event("response.content_part.done", item_id=item["id"],
                                  output_index=index, content_index=0, part=output_text(text))
            else:
                await self._event("response.output_item.added", output_index=index,
                                  item={**item, "arguments": "", "status": "in_progress"})
                await self._event("response.function_call_arguments.delta", item_id=item["id"],
                                  output_index=index, delta=item["arguments"])
                await self._event("response.function_call_arguments.done", item_id=item["id"],
                                  output_index=index, name=item["name"],
                                  arguments=item["arguments"])
            await self._event("response.output_item.done", output_index=index, item=item)
