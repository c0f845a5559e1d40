"""Fixtures every dashboard test shares: one headless Chromium per module (two cores are shared,
so browser sessions are few) and a local OpenID provider on loopback."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright
from support.browser import CHROMIUM

with warnings.catch_warnings():
    # It imports authlib.jose, which authlib now deprecates; authlib also installs an "always"
    # filter for its warnings on import, which leaving this block takes away again.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore")
    import oidc_provider_mock


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(scope="module")
def oidc_issuer() -> Iterator[str]:
    """A real OpenID provider on loopback (oidc-provider-mock: any client id, any user)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server_cm = oidc_provider_mock.run_server_in_thread(require_nonce=True)
        server = server_cm.__enter__()
    try:
        yield f"http://localhost:{server.server_port}"
    finally:
        server_cm.__exit__(None, None, None)


