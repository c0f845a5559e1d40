"""One paid call, whatever API it came in by: hold its worst case, run it, settle what it
delivered.

Chat Completions, Completions, Responses and Messages each parse their own request into a
:class:`~coordinator.gateway.completion.CompletionSpec` and write their own wire format (an
:data:`Answer`); everything between — the credit hold, the first token, refused demand, the
settlement — is here, once. The response is committed only when the first token has arrived, so
every retry before it is invisible to the consumer and an error before it is an ordinary HTTP
error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import TypeVar

import pydantic
from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.catalogue import Price
from coordinator.errors import CoordinatorError, NoCapacity, QueueFull, RequestTooLarge
from coordinator.gateway.billing import (
    CallMeter,
    hold_for_call,
    prompt_token_estimate,
    settle_call,
    worst_case_cost,
)
from coordinator.gateway.completion import CompletionSpec, Finished, Piece, stream_completion
from coordinator.gateway.demand import note_refused
from coordinator.gateway.needs import GatewayNeeds
from coordinator.json_http import invalid_request

Pieces = AsyncGenerator[Piece | Finished, None]
Answer = Callable[[Pieces, Piece | Finished, CallMeter], Awaitable[web.StreamResponse]]
"""Writes the call's response from its first piece on, telling the meter what it delivered."""


async def paid_call(
    request: web.Request, services: GatewayNeeds, owner: KeyOwner, spec: CompletionSpec,
    price: Price, completion_id: str, answer: Answer,
) -> web.StreamResponse:
    spec = dataclasses.replace(spec, consumer_account=owner.account_id)
    meter = CallMeter(model=spec.model, price=price, completion_id=completion_id,
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
            return await answer(pieces, first, meter)
        finally:
            settle_call(services, hold, meter)


def answered(meter: CallMeter, finished: Finished) -> None:
    """The call ended well: its prompt is billed, and the node that ended it is among those
    paid even when it gave no token (an empty answer is an answer)."""
    meter.prompt_tokens = finished.prompt_tokens
    meter.delivered(finished.node_id, 0)


def sse_error(error: CoordinatorError) -> bytes:
    """An error after the stream has begun, as the OpenAI doors write it: one data event."""
    return b"data: " + json.dumps(error.body()).encode() + b"\n\n"


async def read_whole(
    pieces: Pieces, first: Piece | Finished, meter: CallMeter
) -> tuple[str, Finished]:
    """The rest of an answer read whole (the meter told of each piece), and its end."""
    text: list[str] = []
    item = first
    while not isinstance(item, Finished):
        text.append(item.text)
        meter.delivered(item.node_id, item.tokens)
        item = await anext(pieces)
    answered(meter, item)
    return "".join(text), item


Body = TypeVar("Body", bound=pydantic.BaseModel)


async def read_request(request: web.Request, services: GatewayNeeds, kind: type[Body]) -> Body:
    """The request's JSON body as ``kind``: a 413 past ``max_request_bytes``, else a 400 naming
    the first bad parameter."""
    raw = await read_limited(request, services.settings.max_request_bytes)
    try:
        return kind.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise invalid_request(exc, "body") from exc


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The request's body, refused with a 413 beyond ``limit`` bytes (read no further)."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLarge(f"request body exceeds {limit} bytes")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise RequestTooLarge(f"request body exceeds {limit} bytes")
    return raw
