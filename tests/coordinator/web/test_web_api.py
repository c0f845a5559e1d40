"""The dashboard's HTTP surface on every database: the session cookie and its CSRF guard, the
account's nodes, the public models and pricing, the top-up QR code, and pages failing as pages."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator
from support.wallets import Wallet, ask_nonce, sign_in, signed

from coordinator.accounts.accounts import open_account
from coordinator.accounts.cookies import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from coordinator.accounts.sessions import open_session
from coordinator.settings.economy import TopupSettings
from coordinator.settings.oidc import OidcSettings


async def test_the_browser_session_lives_in_cookies_and_writes_need_the_csrf_header(
    coordinator: RunningCoordinator,
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        signed = await sign_in(http, Wallet.nacl())
        assert http.cookies[SESSION_COOKIE] == signed["token"]
        csrf = http.cookies[CSRF_COOKIE]
        cookie_header = [value for name, value in
                         (await http.get("/v1/account")).request.headers.items()
                         if name == "cookie"]
        assert cookie_header  # the GET went with cookies only, and was allowed
        assert (await http.get("/v1/account")).json()["wallet"] == signed["account"]["wallet"]

        refused = await http.post("/v1/account/keys", json={"name": "forged"})
        assert refused.status_code == 403
        assert CSRF_HEADER in refused.json()["error"]["message"]
        wrong = await http.post("/v1/account/keys", json={"name": "forged"},
                                headers={CSRF_HEADER: csrf + "x"})
        assert wrong.status_code == 403
        assert (await http.get("/v1/account/keys")).json()["data"] == []  # nothing was minted

        made = await http.post("/v1/account/keys", json={"name": "real"},
                               headers={CSRF_HEADER: csrf})
        assert made.status_code == 201, made.text

        out = await http.post("/v1/auth/logout", headers={CSRF_HEADER: csrf})
        assert out.status_code == 204
        assert SESSION_COOKIE not in http.cookies
        assert (await http.get("/v1/account")).status_code == 401


async def test_pages_redirect_signed_out_visitors_and_fail_as_html(
    coordinator: RunningCoordinator,
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        for path in ("/", "/models", "/leaderboard", "/points", "/signin"):
            page = await http.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith(
                "text/html"), path
            assert "Content-Security-Policy" in page.headers
        gated = await http.get("/credits?x=1")
        assert gated.status_code == 302
        location = urlsplit(gated.headers["Location"])
        assert (location.path, parse_qs(location.query)) == ("/signin", {"next": ["/credits?x=1"]})
        lost = await http.get("/nowhere")
        assert lost.status_code == 404 and "<html" in lost.text and "Traceback" not in lost.text
        await sign_in(http, Wallet.nacl())
        assert (await http.get("/credits")).status_code == 200
        assert (await http.get("/static/js/common.js")).headers["content-type"].startswith(
            ("application/javascript", "text/javascript"))


async def test_an_account_sees_its_enrolled_nodes_and_nobody_elses(
    coordinator: RunningCoordinator, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as owner, \
            httpx.AsyncClient(base_url=coordinator.base_url) as stranger:
        signed = await sign_in(owner, Wallet.nacl())
        await sign_in(stranger, Wallet.nacl())
        bearer = {"Authorization": f"Bearer {signed['token']}"}
        assert (await owner.get("/v1/account/nodes")).json()["data"] == []
        issued = (await owner.post("/v1/account/enrollments", headers=bearer)).json()
        agent = AgentProcess.scripted(coordinator, tmp_path / "node",
                                      "--enrollment-token", issued["token"])
        await agent.start()
        try:
            nodes = (await owner.get("/v1/account/nodes")).json()["data"]
            assert [node["node_id"] for node in nodes] == [agent.node_id]
            node = nodes[0]
            assert node["status"] == "online"
            assert node["models"] and node["engine"]
            assert 0.0 < node["trust"]["fraction"] < 1.0
            assert node["trust"]["ramp_days"] == coordinator.settings.economy.trust_ramp_days
            assert (await stranger.get("/v1/account/nodes")).json()["data"] == []
        finally:
            await agent.stop()
        nodes = (await owner.get("/v1/account/nodes")).json()["data"]
        assert [node["status"] for node in nodes] == ["offline"]


async def test_models_and_pricing_are_public(coordinator: RunningCoordinator) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        assert (await http.get("/v1/models")).status_code == 401  # the gateway's list needs a key
        assert (await http.get("/v1/network/models")).json() == {"object": "list", "data": []}
        pricing = (await http.get("/v1/network/pricing")).json()
        economy = coordinator.settings.economy
        assert pricing["usd_per_credit"] == 1_000_000 / economy.credits_per_usdc
        assert pricing["starter_credits"] == economy.starter_credits / 1_000_000


async def test_the_invoice_qr_code_is_an_svg_of_its_own_account(
    tmp_path: Path, database_url: str
) -> None:
    from solders.keypair import Keypair
    from support.solana_rpc_server import refused_url

    running = await start_coordinator(
        tmp_path, database_url=database_url,
        topups=TopupSettings(treasury=str(Keypair().pubkey()), solana_rpc_url=refused_url()),
    )
    try:
        async with httpx.AsyncClient(base_url=running.base_url) as buyer, \
                httpx.AsyncClient(base_url=running.base_url) as other:
            token = (await sign_in(buyer, Wallet.nacl()))["token"]
            await sign_in(other, Wallet.nacl())
            invoice = (await buyer.post("/v1/account/topups", json={"amount_usdc": "3"},
                                        headers={"Authorization": f"Bearer {token}"})).json()
            qr = await buyer.get(f"/v1/account/topups/{invoice['id']}/qr.svg")
            assert qr.status_code == 200 and qr.headers["content-type"] == "image/svg+xml"
            assert qr.text.lstrip().startswith("<svg") and "<path" in qr.text
            assert (await other.get(f"/v1/account/topups/{invoice['id']}/qr.svg")
                    ).status_code == 404
    finally:
        await running.stop()


async def test_a_form_posted_from_another_site_cannot_sign_a_browser_in(
    coordinator: RunningCoordinator,
) -> None:
    wallet = Wallet.nacl()
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        issued = await ask_nonce(http, wallet)
        body = json.dumps(signed(wallet, issued["message"]))
        reply = await http.post("/v1/auth/siws/verify", content=body,
                                headers={"Content-Type": "text/plain"})
        assert reply.status_code == 200  # an API client may still take the token
        assert SESSION_COOKIE not in http.cookies


async def test_an_openid_account_links_a_wallet_once_and_never_one_taken(
    coordinator: RunningCoordinator,
) -> None:
    services = coordinator.services
    async with services.database.session() as session, session.begin():
        account = await open_account(session, services.ledger.books, services.clock.now(), 0,
                                     oidc_subject="https://issuer.example#carol")
        token = await open_session(session, account.id, services.clock.now(),
                                   timedelta(hours=1))
    bearer = {"Authorization": f"Bearer {token}"}
    taken, fresh = Wallet.nacl(), Wallet.solders()
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        await sign_in(http, taken)  # this wallet has an account of its own
        http.cookies.clear()

        async def link(wallet: Wallet) -> httpx.Response:
            issued = await ask_nonce(http, wallet)
            return await http.post("/v1/account/wallet", json=signed(wallet, issued["message"]),
                                   headers=bearer)

        refused = await link(taken)
        assert refused.status_code == 403, refused.text
        linked = await link(fresh)
        assert linked.status_code == 200, linked.text
        assert (linked.json()["wallet"], linked.json()["oidc_linked"]) == (fresh.address, True)
        again = await link(Wallet.nacl())
        assert again.status_code == 400  # one wallet per account
        issued = await ask_nonce(http, fresh)
        body = signed(fresh, issued["message"])
        assert (await http.post("/v1/account/wallet", json=body, headers=bearer)).status_code == 200
        replay = await http.post("/v1/account/wallet", json=body, headers=bearer)
        assert replay.status_code == 401  # the nonce was spent
        # The wallet now signs in to the OpenID account.
        assert (await sign_in(http, fresh))["account"]["id"] == account.id


async def test_an_openid_callback_without_its_flow_goes_back_to_sign_in_with_a_reason(
    tmp_path: Path, database_url: str
) -> None:
    running = await start_coordinator(
        tmp_path, database_url=database_url,
        oidc=OidcSettings(issuer="http://127.0.0.1:9", client_id="web", client_secret="s"),
    )
    try:
        async with httpx.AsyncClient(base_url=running.base_url) as http:
            for query in ("?code=stolen&state=guess", ""):
                reply = await http.get(f"/auth/oidc/callback{query}")
                assert reply.status_code == 302
                location = urlsplit(reply.headers["Location"])
                assert location.path == "/signin"
                assert "start again" in parse_qs(location.query)["error"][0]
                assert SESSION_COOKIE not in http.cookies
            # The provider cannot be reached: sign-in says so instead of failing.
            start = await http.get("/auth/oidc/start?next=/credits")
            assert start.status_code == 302
            location = urlsplit(start.headers["Location"])
            assert (location.path, parse_qs(location.query)["next"]) == ("/signin", ["/credits"])
            assert "could not be reached" in parse_qs(location.query)["error"][0]
    finally:
        await running.stop()


async def test_activity_sums_a_providers_earnings_and_spending_by_day(
    coordinator: RunningCoordinator, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        token = (await sign_in(http, Wallet.nacl()))["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await http.get("/v1/account/activity?days=0", headers=bearer)).status_code == 400
        issued = (await http.post("/v1/account/enrollments", headers=bearer)).json()
        key = (await http.post("/v1/account/keys", json={"name": "self"}, headers=bearer)).json()
        node = AgentProcess.scripted(coordinator, tmp_path / "node",
                                     "--enrollment-token", issued["token"])
        await node.start()
        try:
            client = openai.AsyncOpenAI(base_url=f"{coordinator.base_url}/v1",
                                        api_key=key["secret"], max_retries=0)
            await client.chat.completions.create(
                model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}],
                max_tokens=8)
            await client.close()
        finally:
            await node.stop()
        activity = (await http.get("/v1/account/activity?days=30", headers=bearer)).json()
        ledger = (await http.get("/v1/account/ledger", headers=bearer)).json()["data"]
    days = activity["data"]
    today_utc = coordinator.services.clock.now().date().isoformat()
    assert len(days) == 30 and days[-1]["day"] == today_utc
    assert all(day["calls"] == 0 and day["spent"]["micro_credits"] == 0 for day in days[:-1])
    today = days[-1]
    charged = -sum(e["amount"]["micro_credits"] for e in ledger if e["kind"] == "charge")
    earned = sum(e["amount"]["micro_credits"] for e in ledger if e["kind"] == "provider_share")
    assert today["calls"] == 1
    assert (today["spent"]["micro_credits"], today["earned"]["micro_credits"]) == (charged, earned)
    assert 0 < earned < charged
