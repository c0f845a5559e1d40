"""The coordinator's aiohttp application: ``create_app(settings)`` and its lifecycle."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator

from aiohttp import WSCloseCode, web

from coordinator.accounts.routes import add_account_routes
from coordinator.accounts.topup_routes import add_topup_routes
from coordinator.bus import open_bus, run_as_leader
from coordinator.catalogue import Catalogue
from coordinator.clock import Clock, SystemClock
from coordinator.cloud.fleet import cloud_nodes_online
from coordinator.cloud.routes import add_cloud_node_routes
from coordinator.economy.bounty_keeper import bounties_running
from coordinator.economy.bounty_routes import add_bounty_routes
from coordinator.economy.ledger import Ledger, ensure_system_books
from coordinator.economy.topup_watcher import topup_watching
from coordinator.gateway.anthropic import count_tokens, messages
from coordinator.gateway.chat import chat_completions
from coordinator.gateway.completions import completions
from coordinator.gateway.errors import openai_errors
from coordinator.gateway.models import list_models, network_catalogue, retrieve_model
from coordinator.gateway.responses import create_response, get_response, remove_response
from coordinator.hub.connect import node_connect
from coordinator.hub.enrollment_routes import add_enrollment_routes
from coordinator.hub.replication import follow_presence, publish_presence, serve_relayed
from coordinator.lifecycles import points_running
from coordinator.limits import InMemoryRates, InMemoryStreams, RateStore, StreamGate
from coordinator.limits.enforce import ip_limits
from coordinator.maintenance import release_stale_holds, run_upkeep
from coordinator.metrics import METRICS, Metrics, count_requests, serve_metrics
from coordinator.openapi import openapi_json
from coordinator.openapi.operations import HealthReport
from coordinator.periodic import every
from coordinator.points.routes import add_points_routes
from coordinator.probes.rescoring import rescoring
from coordinator.services import SERVICES, add_views, build_services
from coordinator.settings import CoordinatorSettings
from coordinator.store.catalogue import load_catalogue, reload_catalogue
from coordinator.store.database import Database
from coordinator.store.health import save_health
from coordinator.web.routes import add_web_routes, html_errors

log = logging.getLogger(__name__)


async def network_constants(request: web.Request) -> web.Response:
    constants = request.app[SERVICES].settings.routing
    return web.Response(text=constants.model_dump_json(), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    report = HealthReport(
        status="ok", nodes=len(services.hub), replica=services.bus.replica_id,
        network_nodes=len(services.hub) + len(services.remote_nodes),
        leads=sorted(services.bus.leading),
    )
    return web.Response(text=report.model_dump_json(), content_type="application/json")


def create_app(
    settings: CoordinatorSettings, *, clock: Clock | None = None, rng: random.Random | None = None
) -> web.Application:
    app = web.Application(
        middlewares=[count_requests, openai_errors, html_errors, ip_limits],
        client_max_size=settings.max_request_bytes,
    )
    app[METRICS] = metrics = Metrics()
    the_clock = clock or SystemClock()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        database = await Database.open(settings.database_url)
        books = await ensure_system_books(database, the_clock.now())
        ledger = Ledger(database, settings.economy, the_clock, books)
        bus = open_bus(settings.redis_url, settings.bus)
        catalogue = Catalogue(await load_catalogue(database))
        rates: RateStore = InMemoryRates(the_clock)
        streams: StreamGate = InMemoryStreams()
        shared_streams = None
        if bus.distributed:  # limits count across every replica (redis is installed with it)
            from coordinator.bus.redis import RedisBus
            from coordinator.limits.shared import RedisRates, RedisStreams

            assert isinstance(bus, RedisBus)
            rates = RedisRates(bus.client, settings.bus.prefix)
            streams = shared_streams = RedisStreams(bus.client, settings.bus.prefix)
        services = build_services(
            settings, clock=the_clock, rng=rng or random.Random(), database=database,
            catalogue=catalogue, ledger=ledger, bus=bus, rates=rates, streams=streams,
        )
        add_views(app, services)
        services.observers.append(metrics.observe)
        metrics.watch(services)
        # Upkeep looks after this replica's own nodes; what concerns the whole network runs
        # on one replica at a time, under a leader lease.
        tasks = [
            asyncio.create_task(run_upkeep(services, settings.upkeep_interval_s)),
            asyncio.create_task(every(
                settings.catalogue_refresh_s,
                lambda: reload_catalogue(database, catalogue), log, "reload the catalogue",
                wait_first=True,
            )),
            asyncio.create_task(run_as_leader(
                bus, "ledger-holds",
                lambda: release_stale_holds(services, settings.upkeep_interval_s),
                lease_s=settings.bus.leader_lease_s,
            )),
        ]
        if shared_streams is not None:
            tasks.append(asyncio.create_task(shared_streams.run()))
        if bus.distributed:
            await bus.start(lambda message: serve_relayed(services, message))
            tasks.append(asyncio.create_task(publish_presence(services)))
            tasks.append(asyncio.create_task(follow_presence(services)))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()
        await ledger.close()
        await services.keys.flush()
        await database.close()

    async def close_node_links(app: web.Application) -> None:
        # Nodes reconnect (to this replica once it is back, or to another) within their backoff.
        services = app[SERVICES]
        services.stopping.set()
        try:
            await services.bus.withdraw_presence()
        except Exception:  # the lease lapses on its own
            logging.getLogger(__name__).warning("presence not withdrawn", exc_info=True)
        now = services.clock.monotonic()
        known = [snapshot.node_id for snapshot in services.router.snapshots(now=now)]
        await save_health(
            services.database, services.router, known, wall_now=services.clock.now().timestamp()
        )
        await services.hub.close_all(WSCloseCode.SERVICE_RESTART, "coordinator restarting")

    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(topup_watching)  # after lifecycle: it needs Services
    app.cleanup_ctx.append(bounties_running)  # recomputed by one leader, read by every replica
    app.cleanup_ctx.append(points_running)  # the points history and the probe scheduler
    app.cleanup_ctx.append(cloud_nodes_online)  # after lifecycle: it needs Services
    app.cleanup_ctx.append(rescoring)
    app.on_shutdown.append(close_node_links)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/responses", create_response)
    app.router.add_get("/v1/responses/{response_id}", get_response)
    app.router.add_delete("/v1/responses/{response_id}", remove_response)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id}", retrieve_model)
    app.router.add_get("/v1/nodes/connect", node_connect)
    app.router.add_get("/v1/network/constants", network_constants)
    app.router.add_get("/v1/network/catalogue", network_catalogue)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", serve_metrics)  # per replica; deploy/nginx keeps it private
    app.router.add_get("/openapi.json", openapi_json)  # every route: coordinator/openapi
    add_account_routes(app)
    add_topup_routes(app)
    add_bounty_routes(app)
    add_enrollment_routes(app)
    add_points_routes(app)
    add_web_routes(app, settings)
    add_cloud_node_routes(app)
    return app
