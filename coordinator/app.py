"""The coordinator's aiohttp application: ``create_app(settings)`` and its lifecycle."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from coordinator.accounts.api_keys import KeyAuthenticator
from coordinator.accounts.routes import add_account_routes
from coordinator.catalogue import Catalogue
from coordinator.clock import Clock, SystemClock
from coordinator.economy.ledger import Ledger, ensure_system_books
from coordinator.economy.topup_routes import add_topup_routes
from coordinator.economy.topup_watcher import topup_watching
from coordinator.gateway.chat import chat_completions
from coordinator.gateway.errors import openai_errors
from coordinator.gateway.models import list_models
from coordinator.hub.connect import node_connect
from coordinator.hub.enrollment_routes import add_enrollment_routes
from coordinator.hub.live import NodeHub
from coordinator.maintenance import run_upkeep, save_health
from coordinator.probes.rescoring import rescoring
from coordinator.routing import Router
from coordinator.services import SERVICES, Services
from coordinator.settings import CoordinatorSettings
from coordinator.store.database import Database


async def network_constants(request: web.Request) -> web.Response:
    constants = request.app[SERVICES].settings.routing
    return web.Response(text=constants.model_dump_json(), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "nodes": len(request.app[SERVICES].hub)})


def create_app(
    settings: CoordinatorSettings, *, clock: Clock | None = None, rng: random.Random | None = None
) -> web.Application:
    app = web.Application(
        middlewares=[openai_errors], client_max_size=settings.max_request_bytes
    )
    the_clock = clock or SystemClock()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        database = await Database.open(settings.database_url)
        books = await ensure_system_books(database, the_clock.now())
        ledger = Ledger(database, settings.economy, the_clock, books)
        app[SERVICES] = Services(
            ledger=ledger,
            settings=settings,
            clock=the_clock,
            database=database,
            catalogue=Catalogue.default(),
            hub=NodeHub(),
            router=Router(settings.routing),
            keys=KeyAuthenticator(database),
            rng=rng or random.Random(),
        )
        upkeep = asyncio.create_task(run_upkeep(app[SERVICES], settings.upkeep_interval_s))
        yield
        upkeep.cancel()
        await asyncio.gather(upkeep, return_exceptions=True)
        await ledger.close()
        await database.close()

    async def close_node_links(app: web.Application) -> None:
        # Nodes reconnect (to this replica once it is back, or to another) within their backoff.
        services = app[SERVICES]
        services.shutting_down = True
        now = services.clock.monotonic()
        known = [snapshot.node_id for snapshot in services.router.snapshots(now=now)]
        await save_health(services, known)
        await services.hub.close_all(WSCloseCode.SERVICE_RESTART, "coordinator restarting")

    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(topup_watching)  # after lifecycle: it needs Services
    app.cleanup_ctx.append(rescoring)
    app.on_shutdown.append(close_node_links)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/nodes/connect", node_connect)
    app.router.add_get("/v1/network/constants", network_constants)
    app.router.add_get("/healthz", healthz)
    add_account_routes(app)
    add_topup_routes(app)
    add_enrollment_routes(app)
    return app
