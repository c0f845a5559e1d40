"""The dashboard in a real browser against a real coordinator and a real llama.cpp node.

A provider signs in with a wallet (Wallet Standard, real ed25519 signatures), generates the
install command, and the node that enrolls with its token appears on the page; a consumer mints a
key on the page, calls the gateway with the official ``openai`` client, and watches the call show
up in usage; a top-up invoice carries its QR code and turns credited when the chain says so;
Google-style OpenID sign-in links to the wallet account. Screenshots of every page are saved under
``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from support.browser import (
    close,
    free_port,
    new_page,
    screenshot,
    sign_in_with_wallet,
    site_settings,
)
from support.cluster import TIMEOUT_FACTOR, AgentProcess, RunningCoordinator, start_coordinator
from support.solana_chain import USDC, UsdcChain
from support.solana_rpc_server import FakeSolanaRpc
from support.wallets import Wallet

from coordinator.accounts.api_keys import KEY_PREFIX
from coordinator.settings.economy import TopupSettings
from coordinator.settings.oidc import OidcSettings

WAIT_MS = 30_000 * TIMEOUT_FACTOR


def pay_like_a_wallet(chain: UsdcChain, url: str) -> Any:
    """Read the Solana Pay transfer request the page links to and pay it as a wallet would."""
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    mint = Pubkey.from_string(query["spl-token"])
    return chain.pay(chain.wallet(mint=mint), Pubkey.from_string(parts.path),
                     int(Decimal(query["amount"]) * USDC), [query["reference"]], mint=mint)


class Stack:
    def __init__(self, coordinator: RunningCoordinator, rpc: FakeSolanaRpc, tmp: Path) -> None:
        self.coordinator = coordinator
        self.rpc = rpc
        self.tmp = tmp
        self.agents: list[AgentProcess] = []

    @property
    def url(self) -> str:
        return self.coordinator.base_url


@pytest_asyncio.fixture(scope="module")
async def stack(
    tmp_path_factory: Any, oidc_issuer: str
) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("web")
    rpc = await FakeSolanaRpc().start()
    port = free_port()
    coordinator = await start_coordinator(
        tmp, **site_settings(port),
        topups=TopupSettings(treasury=str(Keypair().pubkey()), solana_rpc_url=rpc.url,
                             poll_interval_s=0.1),
        oidc=OidcSettings(issuer=oidc_issuer, client_id="koretex-web", client_secret="s3cret"),
    )
    stack = Stack(coordinator, rpc, tmp)
    try:
        yield stack
    finally:
        for agent in stack.agents:
            await agent.stop()
        await coordinator.stop()
        await rpc.stop()


async def test_signed_out_visitors_are_sent_to_sign_in_and_lost_pages_stay_pages(
    stack: Stack, browser: Browser
) -> None:
    page = await new_page(browser, stack.url)
    for path in ("/dashboard", "/credits", "/run-a-node"):
        await page.goto(path)
        assert page.url == f"{stack.url}/signin?next={path}"
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#wallets")).to_contain_text("No Solana wallet found")
    missing = await page.goto("/no-such-page")
    assert missing is not None and missing.status == 404
    assert missing.headers["content-type"].startswith("text/html")
    await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    async with httpx.AsyncClient(base_url=stack.url) as http:
        api_missing = await http.get("/v1/no-such-route")
        assert api_missing.json()["error"]["code"] == "not_found"
        refused = await http.get("/v1/account")
        assert refused.status_code == 401
    await close(page)


async def test_a_provider_enrolls_a_node_and_a_consumer_pays_for_a_call(
    stack: Stack, browser: Browser, smollm2_path: Path
) -> None:
    wallet = Wallet.nacl()
    page = await new_page(browser, stack.url, wallet)
    await sign_in_with_wallet(page, "/run-a-node")
    await expect(page.locator("#who-name")).to_have_text(re.compile(wallet.address[:4]))

    # Run a node: the command carries a one-time token; the node that uses it shows up.
    await page.get_by_role("button", name="Generate my command").click()
    command = page.locator("#command-text")
    await expect(command).to_contain_text("install.sh")
    text = await command.inner_text()
    token = re.search(r"(kte-[A-Za-z0-9_\-]+)", text)
    assert token is not None, text
    await expect(page.locator("#command-expires")).not_to_be_empty()
    agent = AgentProcess.llama(stack.coordinator, smollm2_path, stack.tmp / "node",
                               extra=["--enrollment-token", token.group(1)])
    stack.agents.append(agent)
    await agent.start()
    await expect(page.locator(f'#node-list li[data-node="{agent.node_id}"]')).to_contain_text(
        "online", timeout=WAIT_MS)
    await screenshot(page, "run-a-node")

    # Credits: mint a key on the page; it is shown once.
    await page.goto("/credits")
    await page.get_by_label("Key name").fill("notebook")
    await page.get_by_role("button", name="Mint a key").click()
    await expect(page.locator("#new-key-secret")).not_to_be_empty()
    secret = await page.locator("#new-key-secret").inner_text()
    assert secret.startswith(KEY_PREFIX), secret
    await expect(page.locator("#keys tbody tr")).to_have_count(1)

    # The consumer uses it with the official client.
    client = openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key=secret, max_retries=0,
                                timeout=120 * TIMEOUT_FACTOR)
    reply = await client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
    )
    assert reply.usage is not None and reply.usage.completion_tokens > 0

    # The dashboard shows the call in usage, and the node with its live state.
    await page.goto("/dashboard")
    usage_row = page.locator("#usage tbody tr").filter(has_text="notebook")
    await expect(usage_row.locator('[data-field="calls"]')).to_have_text("1", timeout=WAIT_MS)
    node_row = page.locator(f'#nodes tr[data-node="{agent.node_id}"]')
    await expect(node_row).to_contain_text("online")
    await expect(node_row).to_contain_text("smollm2-135m-instruct")
    await expect(node_row).to_contain_text("llama")
    await expect(page.locator("#earnings-chart svg")).to_be_visible()
    await expect(page.locator("#ledger tbody tr").first).to_be_visible()
    await screenshot(page, "dashboard")

    # Top up: a refused amount says why, in words.
    await page.goto("/credits")
    await page.get_by_label("Amount (USDC)").fill("20000")
    await page.get_by_role("button", name="Create invoice").click()
    await expect(page.locator("#topup-status")).to_contain_text("Could not create the invoice")
    await expect(page.locator("#topup-status")).to_have_class(re.compile("error"))
    await expect(page.locator("#invoice")).to_be_hidden()

    # The invoice has its amount, the solana: link and a QR code, and turns credited.
    await page.get_by_label("Amount (USDC)").fill("2.5")
    await page.get_by_role("button", name="Create invoice").click()
    link = page.locator("#invoice-link")
    await expect(link).to_have_attribute("href", re.compile(r"^solana:"))
    await expect(page.locator("#invoice-amount")).to_have_text("2.5")
    qr = page.locator("#invoice-qr")
    await expect(qr).to_have_js_property("complete", True)
    assert await qr.evaluate("image => image.naturalWidth") > 100
    await screenshot(page, "credits")
    payment_url = await link.get_attribute("href")
    assert payment_url is not None
    stack.rpc.publish(pay_like_a_wallet(UsdcChain(), payment_url), finalized=True)
    await expect(page.locator("#invoice-state")).to_contain_text("credited", timeout=WAIT_MS)

    # Revoke the key on the page: the gateway refuses it from then on.
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Revoke key notebook").click()
    await expect(page.locator("#keys tbody tr").first).to_contain_text("revoked")
    try:
        await client.chat.completions.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4,
        )
        raise AssertionError("a revoked key still works")
    except openai.AuthenticationError:
        pass
    await client.close()
    await close(page)


async def test_the_models_page_shows_what_the_api_says(stack: Stack, browser: Browser) -> None:
    api_key = await stack.coordinator.api_key("models-reader")
    async with httpx.AsyncClient(base_url=stack.url) as http:
        listed = (await http.get("/v1/models", headers={"Authorization": f"Bearer {api_key}"})
                  ).json()["data"]
    assert listed, "the journey's node should be serving"
    page = await new_page(browser, stack.url)
    await page.goto("/models")
    rows = page.locator("#models-table tbody tr")
    await expect(rows).to_have_count(len(listed))
    for model in listed:
        row = page.locator(f'#models-table tr[data-model="{model["id"]}"]')
        await expect(row.locator('[data-field="nodes"]')).to_have_text(str(model["nodes"]))
        credits = model["credits_per_1m"]
        await expect(row.locator('[data-field="credits"]')).to_have_text(
            f"{credits['input']} in · {credits['output']} out")
        await expect(row.locator('[data-field="usd"]')).to_contain_text("$")
        bounty = model["bounty_multiplier"]
        await expect(row.locator('[data-field="bounty"]')).to_have_text(
            f"×{bounty:g}" if bounty > 1 else "none")
        await row.get_by_text("OpenAI request").click()
        await expect(row.locator("pre")).to_contain_text(f'"model": "{model["id"]}"')
    await screenshot(page, "models")
    await page.goto("/")
    await expect(page.locator("#stat-models")).to_have_text(str(len(listed)))
    await screenshot(page, "overview")
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    await page.goto("/models")
    await expect(rows).to_have_count(len(listed))
    await screenshot(page, "models-phone")
    # Live: the node leaves and the open page follows without a reload.
    for agent in stack.agents:
        await agent.stop()
    await expect(rows).to_have_count(0, timeout=WAIT_MS)
    await expect(page.locator("#models-status")).to_contain_text("No model is being served")
    await close(page)


# The mock provider (a Flask app on a thread) uses authlib APIs authlib itself now deprecates.
@pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")
async def test_openid_sign_in_links_to_a_wallet_account_and_signs_in_alone(
    stack: Stack, browser: Browser
) -> None:
    wallet = Wallet.nacl()
    page = await new_page(browser, stack.url, wallet, sign_in=False)  # the signMessage fallback
    await sign_in_with_wallet(page, "/dashboard")
    await page.get_by_role("link", name="Link Google").click()
    await page.get_by_placeholder("sub").fill("alice")
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(f"{stack.url}/dashboard")
    await expect(page.locator("#oidc-linked")).to_contain_text("Google linked")
    await close(page)

    # A browser that never saw the wallet signs in with Google alone: the same account.
    page = await new_page(browser, stack.url)
    await page.goto("/signin?next=/credits")
    await page.get_by_role("link", name="Sign in with Google").click()
    await page.get_by_placeholder("sub").fill("alice")
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(f"{stack.url}/credits")
    await expect(page.locator("#who-name")).to_have_text(re.compile(wallet.address[:4]))
    await page.goto("/signin")
    await screenshot(page, "signin")
    await close(page)

    # An identity already on one account cannot be linked to another.
    page = await new_page(browser, stack.url, Wallet.nacl())
    await sign_in_with_wallet(page, "/dashboard")
    await page.get_by_role("link", name="Link Google").click()
    await page.get_by_placeholder("sub").fill("alice")
    await page.get_by_role("button", name="Authorize").click()
    await expect(page.get_by_role("alert")).to_contain_text("already signs in to another account")
    await close(page)

    # Someone new through Google gets an account of their own, without a wallet, and links one.
    second = Wallet.solders()
    page = await new_page(browser, stack.url, second)
    await page.goto("/signin?next=/dashboard")
    await page.get_by_role("link", name="Sign in with Google").click()
    await page.get_by_placeholder("sub").fill("bob")
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(f"{stack.url}/dashboard")
    await expect(page.locator("#identities")).to_contain_text("No wallet linked")
    await page.get_by_role("button", name="Link Test Wallet").click()
    await expect(page.locator("#wallet-linked")).to_contain_text(second.address)
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{stack.url}/")
    await page.goto("/dashboard")
    assert "/signin" in page.url

    # ...after which the wallet alone opens that same account.
    await sign_in_with_wallet(page, "/dashboard")
    await expect(page.locator("#oidc-linked")).to_contain_text("Google linked")
    await expect(page.locator("#wallet-linked")).to_contain_text(second.address)
    await close(page)
