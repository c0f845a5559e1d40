"""``GET /v1/models``: the catalogue models that at least one live node serves right now (a
node counts once it has passed its admission exam for the model); ``GET /v1/models/{id}``: one
catalogue model, served now or not (``nodes`` says).

A model's ``context_length`` is the largest context a live node serves it with, the most a
request can use right now; the catalogue's figure only while no live node declares one."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from coordinator.accounts.auth import require_api_key
from coordinator.catalogue import PricedModel
from coordinator.errors import InvalidRequest, ModelNotFound
from coordinator.gateway.context import ContextBudget, context_budget
from coordinator.gateway.needs import GATEWAY_NEEDS, GatewayNeeds
from coordinator.gateway.openai_types import ModelEntry, ModelList
from protocol.catalogue import NetworkCatalogue
from protocol.chat import ChatMessage
from protocol.ids import ModelId

CATALOGUE_EPOCH = 1_767_225_600  # 2026-01-01: OpenAI's "created" for catalogue models


async def list_models(request: web.Request) -> web.Response:
    await require_api_key(request)
    return web.Response(
        text=live_models(request).model_dump_json(), content_type="application/json"
    )


async def retrieve_model(request: web.Request) -> web.Response:
    await require_api_key(request)
    model_id = request.match_info["model_id"]
    entry = next((e for e in catalogue_models(request).data if e.id == model_id), None)
    if entry is None:
        raise ModelNotFound(f"the model {model_id!r} does not exist", param="model")
    return web.Response(text=entry.model_dump_json(), content_type="application/json")


def live_models(request: web.Request) -> ModelList:
    return ModelList(data=[entry for entry in catalogue_models(request).data if entry.nodes > 0])


async def network_catalogue(request: web.Request) -> web.Response:
    """``GET /v1/network/catalogue``: every model with its identity, prices and source, and how
    many nodes connected anywhere on the network serve it now (exam or not)."""
    services = request.app[GATEWAY_NEEDS]
    connected = Counter(model for node in services.hub.nodes() for model in node.models)
    connected.update(
        model for node in services.remote_nodes.values() for model in node.models
    )
    listing = NetworkCatalogue(data=tuple(
        priced.published(nodes=connected[priced.id]) for priced in services.catalogue
    ))
    return web.Response(text=listing.model_dump_json(), content_type="application/json")


def catalogue_models(request: web.Request) -> ModelList:
    """Every catalogue model with the number of live nodes on the whole network that serve it
    to consumers now (a node still sitting its admission exam for a model does not count)."""
    services = request.app[GATEWAY_NEEDS]
    router = services.router
    live = Counter(
        model for node in services.hub.nodes() if not node.draining for model in node.models
        if router.paid_eligible(node.node_id, model)
    )
    live.update(  # nodes connected to the other replicas
        model for node in services.remote_nodes.values() if not node.draining
        for model in node.models if model not in node.paid_held
    )
    entries = [
        ModelEntry(
            id=priced.id, created=CATALOGUE_EPOCH, nodes=live[priced.id],
            credits_per_1m={
                "input": priced.price.input_per_1m, "output": priced.price.output_per_1m,
            },
            context_length=_served_context(services, priced),
            chat_template=priced.model.chat_template,
            bounty_multiplier=services.bounties.multiplier(priced.id, services.settings.economy),
        )
        for priced in services.catalogue
    ]
    return ModelList(data=entries)


def _served_context(services: GatewayNeeds, priced: PricedModel) -> int:
    largest = services.router.largest_context(ModelId(priced.id))
    return priced.model.context_length if largest is None else largest


def requested_model(services: GatewayNeeds, name: str, *, chat: bool) -> PricedModel:
    """The catalogue model a request names: a 404 naming ``model`` when there is none, and for a
    chat request a 400 when the model cannot chat (:func:`require_chat_template`)."""
    priced = services.catalogue.get(name)
    if priced is None:
        raise ModelNotFound(f"the model {name!r} does not exist", param="model")
    if chat:
        require_chat_template(priced)
    return priced


def request_budget(
    services: GatewayNeeds, priced: PricedModel, messages: tuple[ChatMessage, ...],
    requested: int | None,
) -> ContextBudget:
    """What the request needs of a node's context (``gateway.context.context_budget``) against
    the largest context a live node serves the model with. ``requested`` None is OpenAI's "up
    to the context": of the node chosen, and held for at the largest live context."""
    return context_budget(
        messages, requested, largest_context=services.router.largest_context(ModelId(priced.id)),
        catalogue_context=priced.model.context_length,
        max_tokens_limit=services.settings.max_tokens_limit,
    )


def require_chat_template(priced: PricedModel) -> None:
    """Refuse a chat request to a completion model (one whose weights carry no chat template)
    before any node is asked: there is no conversation format to render it in."""
    if not priced.model.chat_template:
        raise InvalidRequest(
            f"model {priced.id} has no chat template; use /v1/completions", param="model"
        )
