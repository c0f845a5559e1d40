"""Public points endpoints (no auth): the leaderboard, a provider's breakdown, the estimator,
the live constants and the network's daily usage. They read the keeper's current standings:
today's partial figures included, as of this request."""

from __future__ import annotations

import math

from aiohttp import web

from coordinator.contributions import OperatorId
from coordinator.errors import InvalidRequest, NotFound
from coordinator.json_http import json_reply
from coordinator.points.estimate import estimate
from coordinator.points.needs import POINTS_NEEDS
from coordinator.points.schemas import (
    Leaderboard,
    LeaderboardEntry,
    NetworkUsage,
    PointsEstimate,
    ProviderPoints,
)
from coordinator.points.standings import Standings
from protocol.ids import ModelId

DEFAULT_DAYS = 30


async def _standings(request: web.Request) -> Standings:
    return await request.app[POINTS_NEEDS].points.current()


def _days(request: web.Request) -> int:
    limit = request.app[POINTS_NEEDS].settings.points.max_days
    raw = request.query.get("days", str(DEFAULT_DAYS))
    try:
        days = int(raw)
    except ValueError:
        raise InvalidRequest(f"days must be a whole number, got {raw!r}", param="days") from None
    if not 1 <= days <= limit:
        raise InvalidRequest(f"days must lie between 1 and {limit}", param="days")
    return days


def _number(request: web.Request, name: str, default: float | None = None) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise InvalidRequest(f"{name} is required", param=name)
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, got {raw!r}", param=name) from None
    if not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number", param=name)
    return value


async def get_leaderboard(request: web.Request) -> web.Response:
    days = _days(request)
    standings = await _standings(request)
    rows = standings.board(days)
    return json_reply(Leaderboard(
        days=days, constants_version=standings.constants.version,
        data=[LeaderboardEntry.of(row) for row in rows],
    ))


async def get_provider(request: web.Request) -> web.Response:
    days = _days(request)
    standings = await _standings(request)
    wallet = OperatorId(request.match_info["wallet"])
    if not standings.knows(wallet):
        raise NotFound(f"no provider {wallet!r} is known to this network", param="wallet")
    breakdown = standings.provider(wallet, days)
    return json_reply(ProviderPoints.of(breakdown))


async def get_estimate(request: web.Request) -> web.Response:
    services = request.app[POINTS_NEEDS]
    constants = services.settings.points.constants
    tok_s = _number(request, "tok_s")
    uptime = _number(request, "uptime", 1.0)
    days_online = _number(request, "days_online", 0.0)
    models = request.query.getall("model", [])
    if not models:
        raise InvalidRequest("model is required", param="model")
    for model in models:
        if services.catalogue.get(model) is None:
            raise InvalidRequest(f"the model {model!r} is not in the catalogue", param="model")
    try:
        terms = estimate(tok_s, [ModelId(m) for m in models], uptime, days_online, constants)
    except ValueError as exc:
        param = next((name for name in ("tok_s", "uptime", "days_online") if name in str(exc)),
                     None)
        raise InvalidRequest(str(exc), param=param) from None
    return json_reply(PointsEstimate.of(terms))


async def get_constants(request: web.Request) -> web.Response:
    constants = request.app[POINTS_NEEDS].settings.points.constants
    return json_reply(constants)


async def get_usage(request: web.Request) -> web.Response:
    days = _days(request)
    usage = (await _standings(request)).usage_window(days)
    return json_reply(NetworkUsage.of(usage))


def add_points_routes(app: web.Application) -> None:
    """Register the public points endpoints."""
    app.router.add_get("/v1/leaderboard", get_leaderboard)
    app.router.add_get("/v1/providers/{wallet}", get_provider)
    app.router.add_get("/v1/points/estimate", get_estimate)
    app.router.add_get("/v1/points/constants", get_constants)
    app.router.add_get("/v1/network/usage", get_usage)
