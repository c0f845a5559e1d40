"""``POST /v1/completions``: a prompt continued as written, whole or streamed as OpenAI's legacy
``text_completion`` objects; the paid call between is :func:`~coordinator.gateway.call.paid_call`.

A model without a chat template gets the prompt as its one message, which such a model renders
as written: the job reads exactly like the probes it is sent. A chat model gets it as a raw
prompt (``Job.raw_prompt``), its template left out.
"""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.accounts.auth import require_api_key
from coordinator.catalogue import Price
from coordinator.errors import CoordinatorError, InvalidRequest
from coordinator.gateway.billing import CallMeter
from coordinator.gateway.call import Pieces, answered, paid_call, read_request, sse_error
from coordinator.gateway.chat import NODE_HEADER, usage_of
from coordinator.gateway.completion import CompletionSpec, Finished, Piece
from coordinator.gateway.completions_types import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    TextCompletion,
)
from coordinator.gateway.models import request_budget, requested_model
from coordinator.gateway.needs import GATEWAY_NEEDS, GatewayNeeds
from coordinator.limits.enforce import stream_slot
from protocol.chat import ChatMessage, TokenLogprob
from protocol.ids import ModelId


async def completions(request: web.Request) -> web.StreamResponse:
    services = request.app[GATEWAY_NEEDS]
    owner = await require_api_key(request)
    body = await read_request(request, services, CompletionRequest)
    async with stream_slot(request, owner.key_id):
        return await _complete(request, services, owner, body)


def _spec(body: CompletionRequest, services: GatewayNeeds) -> tuple[CompletionSpec, Price]:
    priced = requested_model(services, body.model, chat=False)
    prompt = body.prompt_text()
    if not prompt:
        raise InvalidRequest("prompt: an empty prompt has nothing to continue", param="prompt")
    messages = (ChatMessage(role="user", content=prompt),)
    model = ModelId(priced.id)
    budget = request_budget(services, priced, messages, body.max_tokens)
    spec = CompletionSpec(
        model, messages, body.sampling(budget.max_tokens, None), body.logprobs or 0,
        prompt_floor=budget.prompt_floor, raw_prompt=priced.model.chat_template,
    )
    return spec, priced.price


async def _complete(
    request: web.Request, services: GatewayNeeds, owner: KeyOwner, body: CompletionRequest
) -> web.StreamResponse:
    spec, price = _spec(body, services)
    completion_id = "cmpl-" + secrets.token_urlsafe(18)

    async def answer(pieces: Pieces, first: Piece | Finished, meter: CallMeter) -> (
        web.StreamResponse
    ):
        writer = _Writer(body, completion_id, int(time.time()))
        if body.stream:
            return await writer.stream(request, pieces, first, meter)
        return await writer.whole(pieces, first, meter)

    return await paid_call(request, services, owner, spec, price, completion_id, answer)


class _Writer:
    """One response's text_completion objects, with the legacy logprobs layout."""

    def __init__(self, body: CompletionRequest, completion_id: str, created: int) -> None:
        self._body = body
        self._id = completion_id
        self._created = created
        self._offset = 0  # characters of text written so far, for text_offset

    def _logprobs(self, logprobs: tuple[TokenLogprob, ...]) -> CompletionLogprobs | None:
        top = self._body.logprobs
        if top is None:
            return None
        out = CompletionLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
        for entry in logprobs:
            out.tokens.append(entry.token)
            out.token_logprobs.append(entry.logprob)
            out.top_logprobs.append({alt.token: alt.logprob for alt in entry.top[:top]})
            out.text_offset.append(self._offset)
            self._offset += len(entry.token)
        return out

    def _object(self, choice: CompletionChoice, finished: Finished | None = None) -> (
        TextCompletion
    ):
        return TextCompletion(
            id=self._id, created=self._created, model=self._body.model, choices=[choice],
            usage=usage_of(finished) if finished is not None else None,
        )

    def _echo(self) -> str:
        if not self._body.echo:
            return ""
        prompt = self._body.prompt_text()
        self._offset += len(prompt)
        return prompt

    async def whole(
        self, pieces: Pieces, first: Piece | Finished, meter: CallMeter
    ) -> web.Response:
        text = [self._echo()]
        logprobs = self._logprobs(())
        item = first
        while not isinstance(item, Finished):
            text.append(item.text)
            meter.delivered(item.node_id, item.tokens)
            piece_logprobs = self._logprobs(item.logprobs)
            if logprobs is not None and piece_logprobs is not None:
                for name in CompletionLogprobs.model_fields:
                    getattr(logprobs, name).extend(getattr(piece_logprobs, name))
            item = await anext(pieces)
        answered(meter, item)
        choice = CompletionChoice(
            text="".join(text), logprobs=logprobs, finish_reason=item.finish_reason,
        )
        return web.Response(
            text=self._object(choice, item).model_dump_json(), content_type="application/json",
            headers={NODE_HEADER: first.node_id},
        )

    async def stream(
        self, request: web.Request, pieces: Pieces, first: Piece | Finished, meter: CallMeter
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            NODE_HEADER: first.node_id,
        })
        await response.prepare(request)
        echoed = self._echo()
        if echoed:
            await self._send(response, CompletionChoice(text=echoed, finish_reason=None))
        item = first
        try:
            while not isinstance(item, Finished):
                await self._send(response, CompletionChoice(
                    text=item.text, logprobs=self._logprobs(item.logprobs), finish_reason=None,
                ))
                meter.delivered(item.node_id, item.tokens)
                item = await anext(pieces)
        except CoordinatorError as error:
            await response.write(sse_error(error))
            return response
        answered(meter, item)
        await self._send(response, CompletionChoice(text="", finish_reason=item.finish_reason))
        options = self._body.stream_options
        if options is not None and options.include_usage:
            usage = self._object(CompletionChoice(text="", finish_reason=None), item)
            usage.choices = []
            await response.write(b"data: " + usage.model_dump_json().encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _send(self, response: web.StreamResponse, choice: CompletionChoice) -> None:
        await response.write(b"data: " + self._object(choice).model_dump_json().encode() + b"\n\n")


