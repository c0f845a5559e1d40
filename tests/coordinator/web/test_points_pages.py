"""The leaderboard and "how points work" pages in a real browser, checked against the points API.

The points API (``/v1/leaderboard``, ``/v1/providers/{wallet}``, ``/v1/points/estimate``,
``/v1/points/constants``, ``/v1/network/usage``) is being built beside the dashboard. Until it
lands, ``placeholder_points_api`` below registers stand-ins of exactly its contract on the test
app — only for routes the app does not already have, so the same tests then run against the real
endpoints unchanged. The calculator's stand-in computes with the real pure ``estimate`` and
``PointsConstants``, so the calculator test is real either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, expect
from support.browser import close, free_port, new_page, screenshot, site_settings
from support.cluster import RunningCoordinator, start_coordinator

from coordinator.app import create_app
from coordinator.errors import InvalidRequest, NotFound
from coordinator.points.constants import PointsConstants
from coordinator.points.estimate import estimate
from coordinator.settings import CoordinatorSettings
from protocol.ids import ModelId

# --- PLACEHOLDER points API (stand-ins of the contract; each skipped if the real route exists) ---

CONSTANTS = PointsConstants()
PROVIDERS = [  # wallet, points, tok/s, nodes, jobs, tokens
    ("7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU", 5_321.5, 48.2, 2, 310, 91_000),
    ("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", 12_040.25, 31.0, 1, 920, 240_500),
    ("HN7cABqLq46Es1jh92dQQisAq662SmxELLLsHHe4YWrH", 880.0, None, 1, 12, 3_100),
]


def _days(count: int) -> list[str]:
    today = datetime.now(UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(count - 1, -1, -1)]


async def _leaderboard(request: web.Request) -> web.Response:
    ranked = sorted(PROVIDERS, key=lambda row: -row[1])
    return web.json_response({
        "object": "list", "days": int(request.query.get("days", "30")),
        "constants_version": CONSTANTS.version,
        "data": [
            {"rank": rank, "provider": wallet, "tier": CONSTANTS.tier_for(points),
             "points": points, "tok_s": tok_s, "nodes": nodes, "jobs": jobs, "tokens": tokens}
            for rank, (wallet, points, tok_s, nodes, jobs, tokens) in enumerate(ranked, 1)
        ],
    })


async def _provider(request: web.Request) -> web.Response:
    wallet = request.match_info["wallet"]
    found = next((row for row in PROVIDERS if row[0] == wallet), None)
    if found is None:
        raise NotFound(f"no provider {wallet!r}")
    _, points, tok_s, nodes, jobs, tokens = found
    share = points / nodes
    return web.json_response({
        "provider": wallet, "tier": CONSTANTS.tier_for(points), "points": points,
        "hidden": False,
        "nodes": [
            {"node_id": f"{wallet[:8]}node{index}", "points": share, "tokens": tokens // nodes,
             "jobs": jobs // nodes, "measured_tok_s": tok_s, "removed": False,
             "days": [
                 {"day": day, "score": share / 3, "weighted_score": share / 3,
                  "terms": {"uptime": 0.97, "hardware": math.sqrt(tok_s or 0.0),
                            "model_value": 120.0, "trust": 1.0, "penalties": 0.0}}
                 for day in _days(3)
             ]}
            for index in range(nodes)
        ],
    })


async def _estimate(request: web.Request) -> web.Response:
    try:
        terms = estimate(float(request.query["tok_s"]), ModelId(request.query["model"]),
                         float(request.query["uptime"]), float(request.query["days_online"]),
                         CONSTANTS)
    except (KeyError, ValueError) as exc:
        raise InvalidRequest(f"bad estimate query: {exc}") from exc
    return web.json_response({
        "uptime": terms.uptime, "hardware": terms.hardware, "model_value": terms.model_value,
        "trust": terms.trust, "tokens": terms.tokens, "extra_models": terms.extra_models,
        "points_per_day": terms.points_per_day, "points": terms.points_per_day,
    })


async def _constants(request: web.Request) -> web.Response:
    return web.Response(text=CONSTANTS.model_dump_json(), content_type="application/json")


async def _network_usage(request: web.Request) -> web.Response:
    days = _days(int(request.query.get("days", "30")))
    return web.json_response({"object": "list", "data": [
        {"day": day, "tokens": 1_000 * (index % 7 + 1), "jobs": index % 7 + 1}
        for index, day in enumerate(days)
    ]})


PLACEHOLDERS = {
    "/v1/leaderboard": _leaderboard,
    "/v1/providers/{wallet}": _provider,
    "/v1/points/estimate": _estimate,
    "/v1/points/constants": _constants,
    "/v1/network/usage": _network_usage,
}


def placeholder_points_api(settings: CoordinatorSettings) -> web.Application:
    """The real app, plus a stand-in for each points route it does not serve yet."""
    app = create_app(settings)
    add_missing_points_routes(app)
    return app


def add_missing_points_routes(app: web.Application) -> None:
    served = {(route.method, _shape(route.resource.canonical))
              for route in app.router.routes() if route.resource is not None}
    for path, handler in PLACEHOLDERS.items():
        if ("GET", _shape(path)) not in served:
            app.router.add_get(path, handler)


def _shape(path: str) -> str:
    """A route's pattern with its variables unnamed: /v1/providers/{wallet} ~ /{provider}."""
    return re.sub(r"\{[^}]*\}", "{}", path)

def test_placeholders_step_aside_for_the_real_routes() -> None:
    async def real(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v1/providers/{provider}", real)
    add_missing_points_routes(app)
    providers = [route for route in app.router.routes()
                 if route.method == "GET" and route.resource is not None
                 and route.resource.canonical.startswith("/v1/providers/")]
    assert [route.handler for route in providers] == [real]
    assert len([route for route in app.router.routes() if route.method == "GET"]) == 5


# --- end of PLACEHOLDER ---------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def site(tmp_path_factory: Any) -> AsyncIterator[RunningCoordinator]:
    directory: Path = tmp_path_factory.mktemp("points-site")
    running = await start_coordinator(directory, placeholder_points_api,
                                      **site_settings(free_port()))
    try:
        yield running
    finally:
        await running.stop()


async def api(site: RunningCoordinator, path: str) -> Any:
    async with httpx.AsyncClient(base_url=site.base_url) as http:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


async def test_the_leaderboard_shows_what_the_api_says(
    site: RunningCoordinator, browser: Browser
) -> None:
    board = await api(site, "/v1/leaderboard?days=30")
    usage = await api(site, "/v1/network/usage?days=30")
    page = await new_page(browser, site.base_url)
    await page.goto("/leaderboard")
    rows = page.locator("#board tbody tr")
    await expect(rows).to_have_count(len(board["data"]))
    shown = await rows.evaluate_all("rows => rows.map(row => row.dataset.provider)")
    assert shown == [row["provider"] for row in board["data"]]
    for row in board["data"]:
        line = page.locator(f'#board tr[data-provider="{row["provider"]}"]')
        await expect(line).to_contain_text(row["tier"])
        await expect(line.locator("td").nth(0)).to_have_text(str(row["rank"]))
    await expect(page.locator("#usage-chart svg circle")).to_have_count(len(usage["data"]))

    if board["data"]:
        # Sortable: tokens, most first; again, fewest first.
        await page.get_by_role("button", name="Tokens").click()
        by_tokens = sorted(board["data"], key=lambda row: -row["tokens"])
        shown = await rows.evaluate_all("rows => rows.map(row => row.dataset.provider)")
        assert shown == [row["provider"] for row in by_tokens]
        await expect(page.locator("#board th[aria-sort]")).to_have_attribute("aria-sort",
                                                                               "descending")
        await page.get_by_role("button", name="Tokens").click()
        shown = await rows.evaluate_all("rows => rows.map(row => row.dataset.provider)")
        assert shown == [row["provider"] for row in reversed(by_tokens)]

        # A provider's row opens its per-node breakdown, every term of every day. By keyboard.
        first = board["data"][0]["provider"]
        breakdown = await api(site, f"/v1/providers/{first}?days=30")
        await page.locator(f'#board tr[data-provider="{first}"]').focus()
        await page.keyboard.press("Enter")
        detail = page.locator("#provider-detail")
        await expect(detail.locator(".node-detail")).to_have_count(len(breakdown["nodes"]))
        for node in breakdown["nodes"]:
            section = detail.locator(f'.node-detail[data-node="{node["node_id"]}"]')
            await expect(section.locator("tbody tr")).to_have_count(len(node["days"]))
            await expect(section.locator("thead")).to_contain_text("Model value")
    else:
        await expect(page.locator("#board-status")).to_contain_text("No provider")
    await screenshot(page, "leaderboard")
    await close(page)


async def test_points_page_reads_live_constants_and_its_calculator_matches_the_api(
    site: RunningCoordinator, browser: Browser
) -> None:
    constants = await api(site, "/v1/points/constants")
    page = await new_page(browser, site.base_url)
    await page.goto("/points")
    await expect(page.locator("#constants-status")).to_contain_text("live constants")
    await expect(page.locator('[data-constant="version"]')).to_have_text(str(constants["version"]))
    ramp = constants["trust_ramp_days"]
    await expect(page.locator('[data-constant="trust_ramp_days"]').first).to_have_text(
        f"{ramp:g}")
    await expect(page.locator('[data-constant="trust_start"]').first).to_have_text(
        f"{round(constants['trust_start'] * 1000) / 10:g}%")
    for tier in constants["tiers"]:
        await expect(page.locator("#tiers")).to_contain_text(tier["name"])

    for tok_s, uptime_pct, days in ((40.0, 90, 14), (12.5, 50, 2)):
        await page.get_by_label("Hardware speed (tok/s)").fill(str(tok_s))
        await page.get_by_label("Expected uptime (%)").fill(str(uptime_pct))
        await page.get_by_label("Days online").fill(str(days))
        await page.get_by_role("button", name="Estimate").click()
        expected = await api(site, f"/v1/points/estimate?tok_s={tok_s}&model=gemma-3-270m"
                                   f"&uptime={uptime_pct / 100}&days_online={days}")
        await page.wait_for_function(
            f"Number(document.querySelector('#estimate-points').dataset.value)"
            f" === {expected['points_per_day']!r}"
        )
        assert expected["points_per_day"] > 0
    await screenshot(page, "points")
    await close(page)


@pytest.mark.parametrize("path", ["/v1/leaderboard?days=30", "/v1/points/constants"])
async def test_the_points_api_is_public(site: RunningCoordinator, path: str) -> None:
    assert await api(site, path)
