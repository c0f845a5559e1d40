"""The leaderboard, "how points work", overview and dashboard pages in a real browser, against
the real points API scoring a real history.

The fixture (on SQLite, and on PostgreSQL when given) seeds the contributions store, through the
same append-only API the keeper flushes with, with five UTC days of a small network: five
providers (one, two and three nodes; a node first seen three days ago, still on its trust ramp; a
node never measured; a day of failed checks), enrolled to wallet accounts the way nodes are. The
keeper then rescores the history, and every figure the pages show is checked against what the
endpoints say. The coordinator runs with non-default points constants (trust ramp, tier names),
so a page that hard-coded them would fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect
from support.browser import (
    close,
    free_port,
    new_page,
    screenshot,
    sign_in_with_wallet,
    site_settings,
)
from support.cluster import RunningCoordinator, start_coordinator
from support.databases import BACKENDS, drop_database, fresh_database
from support.enrollment import new_wallet
from support.wallets import Wallet

from coordinator.accounts.accounts import open_account
from coordinator.points import (
    DAY_S,
    Contribution,
    JobResult,
    Measurement,
    OnlineTime,
    ProbeResult,
    day_start,
)
from coordinator.points.keeper import PointsKeeper
from coordinator.settings.points_constants import PointsConstants
from coordinator.store.contributions import append_contributions
from coordinator.store.models import Node
from protocol.ids import ModelId, NodeId

MODEL = ModelId("gemma-3-270m")
DAYS = 5  # of history, ending yesterday (UTC)
TRUST_RAMP_DAYS = 9.0  # not the default: the page must show what the coordinator scores with
TIERS = [{"name": "Copper", "min_points": 0.0}, {"name": "Cobalt", "min_points": 400.0},
         {"name": "Iridium", "min_points": 1_000.0}]


@dataclass(frozen=True)
class SeedNode:
    """One node's typical day: share online, measured speed (None: never measured), jobs and
    tokens served, failed checks; ``age_days`` since it was first seen."""

    online: float
    tok_s: float | None
    jobs: int
    tokens: int
    failed_checks: int = 0
    age_days: int = 40


PROVIDER_A = Wallet.nacl()  # signs in to the dashboard in the browser
NETWORK: dict[str, list[SeedNode]] = {
    PROVIDER_A.address: [SeedNode(1.0, 48.0, 60, 24_000), SeedNode(0.95, 36.5, 25, 9_500)],
    new_wallet(): [SeedNode(0.9, 31.0, 140, 61_000)],
    new_wallet(): [SeedNode(0.6, 12.0, 9, 3_100, age_days=3)],
    new_wallet(): [SeedNode(0.8, 20.0, 15, 5_000, failed_checks=90), SeedNode(0.8, 18.0, 14, 4_700),
                   SeedNode(0.75, 15.0, 12, 4_400)],
    new_wallet(): [SeedNode(0.7, None, 3, 800)],
}


def node_day(node_id: NodeId, day: date, seed: SeedNode, wave: float) -> list[Contribution]:
    """What the keeper would have flushed for one node's UTC day, in hourly-batch shape."""
    start = day_start(day)
    checks = round(1_440 * seed.online)
    records: list[Contribution] = [
        OnlineTime(node_id=node_id, at=start, seconds=seed.online * DAY_S),
        ProbeResult(node_id=node_id, at=start + 3_600, model=MODEL, passed=True,
                    count=checks - seed.failed_checks),
        JobResult(node_id=node_id, at=start + 7_200, model=MODEL, completed=True,
                  tokens=round(seed.tokens * wave), count=max(1, round(seed.jobs * wave))),
    ]
    if seed.failed_checks:
        records.append(ProbeResult(node_id=node_id, at=start + 3_600, model=MODEL, passed=False,
                                   count=seed.failed_checks))
    if seed.tok_s is not None:
        records += [Measurement(node_id=node_id, at=start + 7_200 + minute * 60, model=MODEL,
                                tok_s=seed.tok_s * (0.97 + 0.02 * minute)) for minute in range(3)]
    return records


async def seed_history(site: RunningCoordinator) -> None:
    """Accounts and enrolled nodes as sign-in and enrollment leave them; then the contributions,
    appended through the store API the keeper flushes with; then a recompute."""
    services = site.services
    now = services.clock.now()
    today = now.astimezone(UTC).date()
    records: list[Contribution] = []
    async with services.database.session() as session, session.begin():
        for wallet, seeds in NETWORK.items():
            account = await open_account(session, services.ledger.books, now, 0, wallet=wallet)
            for seed in seeds:
                node_id = NodeId(new_wallet())
                first_seen = now - timedelta(days=seed.age_days)
                session.add(Node(
                    node_id=node_id, operator_account_id=account.id, first_seen=first_seen,
                    last_seen=now - timedelta(hours=2), engine="llama.cpp", models=[MODEL],
                    hardware={"chip": "Apple M2 Pro", "memory_bytes": 32 * 2**30, "cores": 12},
                ))
                for back in range(min(DAYS, seed.age_days), 0, -1):
                    wave = 1.0 + 0.15 * ((back * 3) % DAYS)  # busier and quieter days
                    records += node_day(node_id, today - timedelta(days=back), seed, wave)
    async with services.database.session() as session, session.begin():
        await append_contributions(session, records, now)
    keeper = services.points
    assert isinstance(keeper, PointsKeeper)
    await keeper.refresh()


@pytest_asyncio.fixture(scope="module", params=BACKENDS)
async def site(
    request: pytest.FixtureRequest, tmp_path_factory: Any
) -> AsyncIterator[RunningCoordinator]:
    directory: Path = tmp_path_factory.mktemp("points-site")
    database_url = await fresh_database(request.param, directory)
    running = await start_coordinator(
        directory, database_url=database_url, **site_settings(free_port()),
        points={"constants": {"trust_ramp_days": TRUST_RAMP_DAYS, "tiers": TIERS}},
    )
    try:
        await seed_history(running)
        yield running
    finally:
        await running.stop()
        await drop_database(database_url)


async def api(site: RunningCoordinator, path: str) -> Any:
    async with httpx.AsyncClient(base_url=site.base_url) as http:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


async def shown(page: Page, items: list[tuple[str, Any]]) -> list[str]:
    """Values as the pages format them (common.js ``fmt``): n = number, int, pct = percent."""
    texts: list[str] = await page.evaluate(
        """items => items.map(([kind, value]) => {
             if (value === null) return "\u2014";
             if (kind === "int") return Math.round(value).toLocaleString("en-US");
             if (kind === "pct") return `${Math.round(value * 100)}%`;
             return new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 }).format(value);
           })""",
        [list(item) for item in items],
    )
    return texts


def short(wallet: str) -> str:
    return f"{wallet[:4]}\u2026{wallet[-4:]}"


async def test_the_leaderboard_shows_what_the_api_says(
    site: RunningCoordinator, browser: Browser
) -> None:
    board = await api(site, "/v1/leaderboard?days=30")
    usage = await api(site, "/v1/network/usage?days=30")
    rows_api = board["data"]
    assert [row["provider"] for row in rows_api] and len(rows_api) == len(NETWORK)
    assert sorted(row["provider"] for row in rows_api) == sorted(NETWORK)
    assert [row["rank"] for row in rows_api] == list(range(1, len(NETWORK) + 1))
    assert all(row["points"] > 0 and row["tokens"] > 0 and row["jobs"] > 0 for row in rows_api)
    assert {row["nodes"] for row in rows_api} == {1, 2, 3}
    assert {row["tier"] for row in rows_api} == {tier["name"] for tier in TIERS}, (
        "the seeded network spans every tier, named by the live constants")

    page = await new_page(browser, site.base_url)
    await page.goto("/leaderboard")
    rows = page.locator("#board tbody tr")
    await expect(rows).to_have_count(len(rows_api))
    order = "rows => rows.map(row => row.dataset.provider)"
    assert await rows.evaluate_all(order) == [row["provider"] for row in rows_api]
    for row in rows_api:
        line = page.locator(f'#board tr[data-provider="{row["provider"]}"]')
        expected = [str(row["rank"]), short(row["provider"]), row["tier"], *await shown(page, [
            ("n", row["points"]), ("n", row["tok_s"]), ("int", row["nodes"]),
            ("int", row["jobs"]), ("int", row["tokens"])])]
        await expect(line.locator("td")).to_have_text(expected)
        await expect(line.locator("td").nth(1)).to_have_attribute("title", row["provider"])
    await expect(page.locator("#board-status")).to_contain_text(f"{len(rows_api)} providers")

    # The chart: one point per day the API reports, the seeded days served tokens.
    dots = page.locator("#usage-chart svg circle title")
    await expect(dots).to_have_count(len(usage["data"]))
    assert len(usage["data"]) == 30
    await expect(dots).to_have_text([f"{day['day']}: {day['tokens']:,}" for day in usage["data"]])
    served = [day["tokens"] for day in usage["data"] if day["tokens"]]
    assert len(served) == DAYS and len(set(served)) > 1, "every seeded day, busier and quieter"
    assert sum(served) == sum(row["tokens"] for row in rows_api)

    # Sortable: tokens, most first; again, fewest first; points, fewest first.
    await page.get_by_role("button", name="Tokens").click()
    by_tokens = [row["provider"] for row in sorted(rows_api, key=lambda row: -row["tokens"])]
    assert by_tokens != [row["provider"] for row in rows_api], "a sort that changes the order"
    assert await rows.evaluate_all(order) == by_tokens
    await expect(page.locator("#board th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    await page.get_by_role("button", name="Tokens").click()
    assert await rows.evaluate_all(order) == list(reversed(by_tokens))
    await expect(page.locator("#board th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    await page.get_by_role("button", name="Points").click()
    by_points = [row["provider"] for row in sorted(rows_api, key=lambda row: -row["points"])]
    assert await rows.evaluate_all(order) == by_points
    await page.get_by_role("button", name="#").click()
    assert await rows.evaluate_all(order) == [row["provider"] for row in rows_api]

    # A provider's row opens its per-node breakdown, every term of every day. By keyboard.
    wallet = PROVIDER_A.address
    breakdown = await api(site, f"/v1/providers/{wallet}?days=30")
    assert len(breakdown["nodes"]) == 2
    await page.locator(f'#board tr[data-provider="{wallet}"]').focus()
    await page.keyboard.press("Enter")
    detail = page.locator("#provider-detail")
    await expect(detail.locator(".node-detail")).to_have_count(len(breakdown["nodes"]))
    await expect(detail.locator("p").first).to_contain_text(
        f"{breakdown['tier']} · {(await shown(page, [('n', breakdown['points'])]))[0]} points")
    for node in breakdown["nodes"]:
        assert len(node["days"]) == DAYS and node["points"] > 0
        section = detail.locator(f'.node-detail[data-node="{node["node_id"]}"]')
        points, jobs, tokens, tok_s = await shown(page, [
            ("n", node["points"]), ("int", node["jobs"]), ("int", node["tokens"]),
            ("n", node["measured_tok_s"])])
        await expect(section.locator("p.muted")).to_have_text(
            f"{points} points · {jobs} jobs · {tokens} tokens · {tok_s} tok/s")
        await expect(section.locator("thead")).to_contain_text("Model value")
        lines = section.locator("tbody tr")
        await expect(lines).to_have_count(len(node["days"]))
        for index, day in enumerate(node["days"]):
            terms = day["terms"]
            assert terms["hardware"] > 0 and terms["model_value"] > 0 and terms["trust"] == 1.0
            await expect(lines.nth(index).locator("td")).to_have_text([day["day"], *await shown(
                page, [("pct", terms["uptime"]), ("n", terms["hardware"]),
                       ("n", terms["model_value"]), ("pct", terms["trust"]),
                       ("n", terms["penalties"]), ("n", day["score"]),
                       ("n", day["weighted_score"])])])
    await screenshot(page, "leaderboard")
    await close(page)


async def test_a_node_on_its_trust_ramp_and_a_penalised_day_show_in_the_breakdown(
    site: RunningCoordinator
) -> None:
    """The seeded history is scored by the live constants: the new node ramps over the changed
    ramp, the day of failed checks carries a penalty."""
    board = (await api(site, "/v1/leaderboard?days=30"))["data"]
    by_nodes = {row["nodes"]: row["provider"] for row in board}
    newcomer = next(row["provider"] for row in board
                    if NETWORK[row["provider"]][0].age_days < DAYS)
    [node] = (await api(site, f"/v1/providers/{newcomer}"))["nodes"]
    trust = [day["terms"]["trust"] for day in node["days"]]
    assert len(trust) == 3 and trust == sorted(trust) and trust[0] < trust[-1] < 1.0
    start = PointsConstants().trust_start
    assert trust[1] - trust[0] == pytest.approx((1 - start) / TRUST_RAMP_DAYS)
    penalised = (await api(site, f"/v1/providers/{by_nodes[3]}"))["nodes"]
    assert any(day["terms"]["penalties"] > 0 for node in penalised for day in node["days"])


async def test_points_page_reads_live_constants_and_its_calculator_matches_the_api(
    site: RunningCoordinator, browser: Browser
) -> None:
    constants = await api(site, "/v1/points/constants")
    defaults = PointsConstants()
    assert constants["trust_ramp_days"] == TRUST_RAMP_DAYS != defaults.trust_ramp_days
    assert [tier["name"] for tier in constants["tiers"]] == [tier["name"] for tier in TIERS]
    page = await new_page(browser, site.base_url)
    await page.goto("/points")
    await expect(page.locator("#constants-status")).to_contain_text("live constants")
    await expect(page.locator('[data-constant="version"]')).to_have_text(str(constants["version"]))
    await expect(page.locator('[data-constant="trust_ramp_days"]')).to_have_text(
        f"{TRUST_RAMP_DAYS:g}")
    await expect(page.locator('[data-constant="trust_start"]').first).to_have_text(
        f"{round(constants['trust_start'] * 1000) / 10:g}%")
    await expect(page.locator('[data-constant="fake_model_penalty"]')).to_have_text(
        f"{constants['fake_model_penalty']:g}")
    await expect(page.locator("#tiers")).to_have_text(
        " · ".join(f"{tier['name']} from {tier['min_points']:,.0f} points"
                   for tier in constants["tiers"]) + " (over 30 days).")
    for default in defaults.tiers:
        await expect(page.locator("#tiers")).not_to_contain_text(default.name)

    estimates = []
    for tok_s, uptime_pct, days in ((40.0, 90, 14), (12.5, 50, 2), (80.0, 100, 4)):
        await page.get_by_label("Hardware speed (tok/s)").fill(str(tok_s))
        await page.get_by_label("Expected uptime (%)").fill(str(uptime_pct))
        await page.get_by_label("Days online").fill(str(days))
        await page.get_by_role("button", name="Estimate").click()
        expected = await api(site, f"/v1/points/estimate?tok_s={tok_s}&model={MODEL}"
                                   f"&uptime={uptime_pct / 100}&days_online={days}")
        # A function, not a bare expression: Playwright evals an expression inside the page,
        # which the page's CSP forbids.
        await page.wait_for_function(
            "() => Number(document.querySelector('#estimate-points').dataset.value)"
            f" === {expected['points_per_day']!r}"
        )
        [text] = await shown(page, [("n", expected["points_per_day"])])
        await expect(page.locator("#estimate-points")).to_have_text(text)
        await expect(page.locator("#estimate-terms")).to_contain_text(
            (await shown(page, [("pct", expected["trust"])]))[0])
        assert expected["points_per_day"] > 0
        estimates.append(expected["points_per_day"])
    assert len(set(estimates)) == len(estimates), "different inputs, different estimates"
    await screenshot(page, "points")
    await close(page)


async def test_the_overview_and_the_dashboard_show_real_points(
    site: RunningCoordinator, browser: Browser
) -> None:
    board = (await api(site, "/v1/leaderboard?days=30"))["data"]
    page = await new_page(browser, site.base_url, PROVIDER_A)
    await page.goto("/")
    await expect(page.locator("#stat-top")).to_have_text(short(board[0]["provider"]))

    breakdown = await api(site, f"/v1/providers/{PROVIDER_A.address}?days=30")
    await sign_in_with_wallet(page, "/dashboard")
    [total] = await shown(page, [("n", breakdown["points"])])
    await expect(page.locator("#points")).to_have_text(total)
    nodes = page.locator("#nodes tbody tr")
    await expect(nodes).to_have_count(len(breakdown["nodes"]))
    for node in breakdown["nodes"]:
        [points] = await shown(page, [("n", node["points"])])
        await expect(page.locator(f'#nodes tr[data-node="{node["node_id"]}"] td').last
                     ).to_have_text(points)
    await close(page)


@pytest.mark.parametrize("path", ["/v1/leaderboard?days=30", "/v1/points/constants"])
async def test_the_points_api_is_public(site: RunningCoordinator, path: str) -> None:
    assert await api(site, path)

