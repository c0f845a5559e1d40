"""This replica's Prometheus metrics, served at ``GET /metrics`` for a scraper to collect.

Each replica reports on itself (scrape every replica directly, not through the load balancer;
``deploy/nginx`` keeps the path private as well). Scraping needs ``KORETEX_METRICS__TOKEN`` as a
bearer token; with no token set, only loopback peers that no proxy forwarded are served, so a
replica published by accident still shows nothing. Three sources:

- HTTP: a middleware counts requests by route, method and status, and times them (a streamed
  completion is timed to its last event).
- Jobs: an observer of every job attempt (``Services.observers``) counts attempts by model, kind
  (paid or probe) and outcome, the tokens received, and the speed measured.
- State read at scrape time, so nothing is kept up to date on the hot path: nodes connected here
  and network-wide by breaker state, slots in use, requests waiting per model, queued ledger
  writes, periodic jobs led here, and limit decisions admitted unchecked (Redis unreachable).

Each app has a registry of its own, so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from coordinator.hub.observation import JobObservation

if TYPE_CHECKING:
    from coordinator.services import Services

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SPEED_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # tok/s; the floor is 5
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The registry and the instruments the request path and the job observer update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scrape_token: str | None = None  # until ``watch``: loopback scrapers only
        self.http_requests = Counter(
            "koretex_http_requests", "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"], registry=self.registry,
        )
        self.http_seconds = Histogram(
            "koretex_http_request_duration_seconds",
            "Time to answer an HTTP request (a stream: to its last event), by route.",
            ["route"], buckets=DURATION_BUCKETS, registry=self.registry,
        )
        self.jobs = Counter(
            "koretex_jobs", "Job attempts on nodes, by model, kind (paid or probe) and outcome.",
            ["model", "kind", "outcome"], registry=self.registry,
        )
        self.tokens = Counter(
            "koretex_tokens_received", "Tokens received from nodes, by model and kind.",
            ["model", "kind"], registry=self.registry,
        )
        self.speed = Histogram(
            "koretex_node_tokens_per_second", "Generation speed measured on each job, by model.",
            ["model"], buckets=SPEED_BUCKETS, registry=self.registry,
        )

    def observe(self, observation: JobObservation) -> None:
        """A :data:`~coordinator.hub.observation.Observer` of every job attempt."""
        model, kind = observation.job.model, "probe" if observation.probe else "paid"
        self.jobs.labels(model, kind, observation.outcome.value).inc()
        if observation.tokens:
            self.tokens.labels(model, kind).inc(observation.tokens)
        if observation.tok_s is not None:
            self.speed.labels(model).observe(observation.tok_s)

    def watch(self, services: Services) -> None:
        """Report ``services``' state at each scrape, to scrapers its settings admit."""
        token = services.settings.metrics.token
        self.scrape_token = None if token is None else token.get_secret_value()
        self.registry.register(_StateCollector(services))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    # The route's pattern, not the path: one series per route, whatever ids the paths carry.
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.http_requests.labels(route, request.method, str(status)).inc()
        metrics.http_seconds.labels(route).observe(time.perf_counter() - started)


FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def scrape_refusal(
    token: str | None, authorization: str | None, peer: str | None, forwarded: bool
) -> tuple[int, str] | None:
    """Why a scrape is refused (status and reason), or None to serve it.

    With a token set, only ``Bearer <token>`` is served, from anywhere. Without one, only a
    loopback peer that no proxy forwarded: a reverse proxy on the same host connects from
    loopback too, so a request carrying forwarding headers came from someone else.
    """
    if token is not None:
        expected = f"Bearer {token}".encode()
        if authorization is None or not hmac.compare_digest(expected, authorization.encode()):
            return 401, "metrics need the scrape token: Authorization: Bearer <token>"
        return None
    if forwarded or not _is_loopback(peer):
        return 403, ("metrics are served to loopback only; set KORETEX_METRICS__TOKEN to"
                     " scrape from elsewhere")
    return None


def _is_loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


async def serve_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    refusal = scrape_refusal(
        metrics.scrape_token,
        request.headers.get("Authorization"), request.remote,
        any(name in request.headers for name in FORWARDING_HEADERS),
    )
    if refusal is not None:
        status, reason = refusal
        headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else None
        return web.Response(status=status, text=reason + "\n", headers=headers)
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _StateCollector(Collector):
    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        services = self._services
        snapshots = services.router.snapshots(now=services.clock.monotonic())
        here = {node.node_id for node in services.hub.nodes()}
        nodes = GaugeMetricFamily(
            "koretex_nodes", "Nodes known to routing, by where they are connected and breaker"
            " state.", labels=["connected", "breaker"],
        )
        tally = Tally(("here" if s.node_id in here else "elsewhere", s.breaker_state.value)
                      for s in snapshots)
        for (where, breaker), count in sorted(tally.items()):
            nodes.add_metric([where, breaker], count)
        yield nodes
        local = [s for s in snapshots if s.node_id in here]
        yield GaugeMetricFamily("koretex_slots", "Slots of the nodes connected here.",
                                value=sum(s.slots for s in local))
        yield GaugeMetricFamily("koretex_jobs_in_flight", "Jobs running on nodes connected here.",
                                value=sum(s.in_flight for s in local))
        waiting = GaugeMetricFamily("koretex_requests_waiting",
                                    "Requests queued for a free node, by model.", labels=["model"])
        for model, count in sorted(services.waiting.items()):
            waiting.add_metric([model], count)
        yield waiting
        yield GaugeMetricFamily("koretex_ledger_writes_queued",
                                "Ledger writes waiting for the next group commit.",
                                value=services.ledger.pending_writes)
        yield CounterMetricFamily("koretex_ledger_rejected",
                                  "Ledger writes the database refused, given up on so that the"
                                  " rest of their batch could commit (each one is logged).",
                                  value=services.ledger.rejected_writes)
        leading = GaugeMetricFamily("koretex_leading",
                                    "1 for each periodic job this replica leads.", labels=["job"])
        for job in sorted(services.bus.leading):
            leading.add_metric([job], 1)
        yield leading
        unchecked = CounterMetricFamily(
            "koretex_limit_unchecked", "Requests a limit admitted without deciding (its store"
            " was unreachable).", labels=["limit"],
        )
        unchecked.add_metric(["rate"], services.rates.unchecked)
        unchecked.add_metric(["streams"], services.streams.unchecked)
        yield unchecked
