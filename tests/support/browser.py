"""Browser helpers for the dashboard tests: a Wallet Standard test wallet injected into pages
(signing with a real ed25519 key in Python), pages, screenshots, and coordinator settings for a
site a browser reaches on loopback."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page

from coordinator.accounts.siws import SignInInput, message_text
from support.wallets import Wallet

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"

# A Wallet Standard wallet, registered the way real extensions do (both registration events);
# its signing is done by Python with a real ed25519 key, through functions the test exposes.
WALLET_SCRIPT = """
(() => {
  const b64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const fromB64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const address = %(address)s;
  const account = { address, publicKey: b64(%(public_key)s), chains: ["solana:mainnet"],
                    features: ["solana:signIn", "solana:signMessage"] };
  const wallet = {
    version: "1.0.0", name: %(name)s, chains: ["solana:mainnet"], accounts: [],
    icon: "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
    features: {
      "standard:connect": { version: "1.0.0", connect: async () => {
        wallet.accounts = [account]; return { accounts: [account] }; } },
      "solana:signMessage": { version: "1.0.0", signMessage: async (...inputs) => Promise.all(
        inputs.map(async (input) => ({ signedMessage: input.message,
          signature: b64(await window.koretexSign(fromB64(input.message))) }))) },
    },
  };
  if (%(sign_in)s) {
    wallet.features["solana:signIn"] = { version: "1.0.0", signIn: async (...inputs) => Promise.all(
      inputs.map(async (input) => {
        const signed = JSON.parse(await window.koretexSignIn(JSON.stringify(input)));
        return { account, signedMessage: b64(signed.message), signature: b64(signed.signature),
                 signatureType: "ed25519" };
      })) };
  }
  const register = (api) => api.register(wallet);
  window.addEventListener("wallet-standard:app-ready", ({ detail }) => register(detail));
  window.dispatchEvent(new CustomEvent("wallet-standard:register-wallet", { detail: register }));
})();
"""


async def with_wallet(context: BrowserContext, wallet: Wallet, *, sign_in: bool = True) -> None:
    """Give every page of ``context`` the test wallet (``sign_in=False``: signMessage only)."""
    import base58

    def sign(message_b64: str) -> str:
        signature = base58.b58decode(wallet.sign(base64.b64decode(message_b64)))
        return base64.b64encode(signature).decode()

    def sign_in_with(input_json: str) -> str:
        # What a wallet does: render the standard's sign-in text from the input, then sign it.
        fields = SignInInput.model_validate({**json.loads(input_json), "address": wallet.address})
        text = message_text(fields).encode()
        return json.dumps({"message": base64.b64encode(text).decode(), "signature": sign(
            base64.b64encode(text).decode())})

    await context.expose_function("koretexSign", sign)
    await context.expose_function("koretexSignIn", sign_in_with)
    public_key = base64.b64encode(base58.b58decode(wallet.address)).decode()
    await context.add_init_script(WALLET_SCRIPT % {
        "address": json.dumps(wallet.address), "public_key": json.dumps(public_key),
        "name": json.dumps("Test Wallet"), "sign_in": "true" if sign_in else "false",
    })


async def new_page(browser: Browser, base_url: str, wallet: Wallet | None = None,
                   *, sign_in: bool = True) -> Page:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    if wallet is not None:
        await with_wallet(context, wallet, sign_in=sign_in)
    page = await context.new_page()
    errors: list[str] = []
    SCRIPT_ERRORS[id(page)] = errors
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


SCRIPT_ERRORS: dict[int, list[str]] = {}


async def close(page: Page) -> None:
    """Close the page's context, failing if any of its scripts threw along the way."""
    errors = SCRIPT_ERRORS.pop(id(page), [])
    await page.context.close()
    assert not errors, f"page script errors: {errors}"


async def sign_in_with_wallet(page: Page, next_path: str = "/dashboard") -> None:
    await page.goto(f"/signin?next={next_path}")
    await page.get_by_role("button", name="Sign in with Test Wallet").click()
    await page.wait_for_url(f"**{next_path}")


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky header belongs at the top
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def site_settings(port: int) -> dict[str, Any]:
    """Settings for a coordinator reached at 127.0.0.1:port, as a browser sees it."""
    base = f"http://127.0.0.1:{port}"
    return {"port": port, "public_url": base, "domain": f"127.0.0.1:{port}", "siws_uri": base}


