"""What a page shows is current: a paid call served by a real llama.cpp node shows at once.

The coordinator stores contributions hourly and rescores the whole history every few minutes;
here both are set to an hour, so nothing is folded during the test and the clock is never moved.
Right after one call made with the official client, the consumer's usage shows what it spent,
the operator's activity shows what the node earned, and the leaderboard, the provider's breakdown
and the network's usage show the tokens the node served (still only in this replica's memory).
The leaderboard page, loaded in Chromium right after the call, shows the served tokens. Storing
them then changes no figure: nothing is counted twice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
from playwright.async_api import Browser, expect
from sqlalchemy import func, select
from support.browser import close, free_port, new_page, site_settings
from support.cluster import TIMEOUT_FACTOR, AgentProcess, RunningCoordinator, start_coordinator
from support.enrollment import mint, new_wallet, signed_in

from coordinator.accounts.accounts import open_account
from coordinator.accounts.api_keys import create_key
from coordinator.accounts.sessions import open_session
from coordinator.store.models import ContributionRow

MODEL = "smollm2-135m-instruct"  # an instruct model: the chat door


async def get(coordinator: RunningCoordinator, path: str, session: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {session}"} if session else {}
    async with httpx.AsyncClient(base_url=coordinator.base_url, headers=headers) as http:
        response = await http.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def consumer(coordinator: RunningCoordinator) -> tuple[str, str]:
    """A signed-in consumer with starter credits: its API key and its session token."""
    services = coordinator.services
    now = services.clock.now()
    async with services.database.session() as session, session.begin():
        account = await open_account(
            session, services.ledger.books, now, services.settings.economy.starter_credits,
            wallet=new_wallet(),
        )
        _, secret = await create_key(session, account.id, "notebook", now, None)
        token = await open_session(session, account.id, now, timedelta(hours=1))
    return secret, token


async def stored_rows(coordinator: RunningCoordinator) -> int:
    async with coordinator.services.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(ContributionRow)) or 0)


async def provider_figures(coordinator: RunningCoordinator, wallet: str) -> dict[str, Any]:
    board = await get(coordinator, "/v1/leaderboard?days=1")
    rows = [row for row in board["data"] if row["provider"] == wallet]
    breakdown = await get(coordinator, f"/v1/providers/{wallet}?days=1")
    usage = await get(coordinator, "/v1/network/usage?days=1")
    return {
        "board": (rows[0]["tokens"], rows[0]["jobs"]) if rows else None,
        "breakdown": [(node["tokens"], node["jobs"]) for node in breakdown["nodes"]],
        "network": (usage["data"][-1]["tokens"], usage["data"][-1]["jobs"]),
    }


async def test_a_paid_call_shows_at_once_in_usage_earnings_and_the_board(
    tmp_path: Path, database_url: str, smollm2_path: Path, browser: Browser
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "coordinator", database_url=database_url, **site_settings(free_port()),
        points={"flush_interval_s": 3600.0, "recompute_interval_s": 3600.0},
    )
    agent: AgentProcess | None = None
    try:
        wallet = new_wallet()
        _, operator_session = await signed_in(coordinator, wallet)
        token = (await mint(coordinator, operator_session))["token"]
        agent = AgentProcess.llama(coordinator, smollm2_path, tmp_path / "node",
                                   extra=["--enrollment-token", token])
        await agent.start()
        secret, consumer_session = await consumer(coordinator)

        before = await provider_figures(coordinator, wallet)
        # (the node may already be on the board with its time online, but has served nothing)
        assert before["board"] in (None, (0, 0)), before
        assert before["breakdown"] in ([], [(0, 0)]), before
        assert before["network"] == (0, 0), before
        assert (await get(coordinator, "/v1/account/usage", consumer_session))["total"][
            "calls"] == 0

        client = openai.AsyncOpenAI(base_url=f"{coordinator.base_url}/v1", api_key=secret,
                                    max_retries=0, timeout=120 * TIMEOUT_FACTOR)
        reply = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=12
        )
        await client.close()
        assert reply.usage is not None
        served = reply.usage.completion_tokens
        assert served > 0

        # The next page load, no waiting: the consumer's spending ...
        usage = (await get(coordinator, "/v1/account/usage", consumer_session))["total"]
        assert usage["calls"] == 1
        assert usage["completion_tokens"] == served
        assert usage["prompt_tokens"] == reply.usage.prompt_tokens
        assert usage["spent"]["micro_credits"] > 0
        spent_today = (await get(coordinator, "/v1/account/activity?days=1", consumer_session))[
            "data"][-1]
        assert spent_today["calls"] == 1
        assert spent_today["spent"] == usage["spent"]

        # ... the operator's earnings ...
        earned_today = (await get(coordinator, "/v1/account/activity?days=1", operator_session))[
            "data"][-1]
        assert earned_today["earned"]["micro_credits"] > 0

        # ... and the node's served tokens on the board, its breakdown and the network's usage,
        # although none of it is stored yet.
        assert await stored_rows(coordinator) == 0
        after = await provider_figures(coordinator, wallet)
        assert after == {
            "board": (served, 1), "breakdown": [(served, 1)], "network": (served, 1),
        }, after
        breakdown = await get(coordinator, f"/v1/providers/{wallet}?days=1")
        assert breakdown["nodes"][0]["node_id"] == agent.node_id

        # The page a visitor loads now: the provider's row with the tokens just served.
        page = await new_page(browser, coordinator.base_url)
        await page.goto("/leaderboard")
        line = page.locator(f'#board tr[data-provider="{wallet}"]')
        await expect(line.locator("td").nth(7)).to_have_text(f"{served:,}")
        await expect(line.locator("td").nth(6)).to_have_text("1")
        await close(page)

        # Storing what was in memory moves the figures from the live part to the stored part,
        # and counts nothing twice; nor does the next full rescoring.
        keeper = coordinator.services.points
        assert keeper is not None
        assert await keeper.flush(everything=True) > 0
        assert await stored_rows(coordinator) > 0
        assert await provider_figures(coordinator, wallet) == after
        await keeper.refresh()
        assert await provider_figures(coordinator, wallet) == after
    finally:
        if agent is not None:
            await agent.stop()
        await coordinator.stop()
