"""``GET /v1/models``: the catalogue models that at least one live node serves right now."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from coordinator.gateway.auth import require_api_key
from coordinator.gateway.openai_types import ModelEntry, ModelList
from coordinator.services import SERVICES

CATALOGUE_EPOCH = 1_767_225_600  # 2026-01-01: OpenAI's "created" for catalogue models


async def list_models(request: web.Request) -> web.Response:
    await require_api_key(request)
    return web.Response(
        text=live_models(request).model_dump_json(), content_type="application/json"
    )


def live_models(request: web.Request) -> ModelList:
    services = request.app[SERVICES]
    live = Counter(
        model for node in services.hub.nodes() if not node.draining for model in node.models
    )
    live.update(  # nodes connected to the other replicas
        model for node in services.remote_nodes.values() if not node.draining
        for model in node.models
    )
    entries = [
        ModelEntry(
            id=priced.id, created=CATALOGUE_EPOCH, nodes=live[priced.id],
            credits_per_1m={
                "input": priced.price.input_per_1m, "output": priced.price.output_per_1m,
            },
            context_length=priced.model.context_length,
            bounty_multiplier=services.bounties.multiplier(priced.id, services.settings.economy),
        )
        for priced in services.catalogue
        if live[priced.id] > 0
    ]
    return ModelList(data=entries)
