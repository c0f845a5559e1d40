"""A CSRF token taken from one signed-in browser (the attacker's own) is refused on another's
session: the token is bound to the session it was issued with."""

from __future__ import annotations

import httpx
from support.cluster import RunningCoordinator
from support.wallets import Wallet, sign_in

from coordinator.accounts.cookies import CSRF_COOKIE, CSRF_HEADER, csrf_token_for


async def test_a_csrf_token_from_another_session_is_refused(
    coordinator: RunningCoordinator,
) -> None:
    async with (httpx.AsyncClient(base_url=coordinator.base_url) as victim,
                httpx.AsyncClient(base_url=coordinator.base_url) as attacker):
        victim_session = await sign_in(victim, Wallet.nacl())
        attacker_session = await sign_in(attacker, Wallet.nacl())
        victim_csrf, attacker_csrf = victim.cookies[CSRF_COOKIE], attacker.cookies[CSRF_COOKIE]
        assert victim_csrf != attacker_csrf
        assert victim_csrf == csrf_token_for(victim_session["token"])

        # The attacker's own valid token, sent with the victim's session cookie.
        forged = await victim.post("/v1/account/keys", json={"name": "forged"},
                                   headers={CSRF_HEADER: attacker_csrf})
        assert forged.status_code == 403, forged.text
        # A planted CSRF cookie (cookie tossing) matching the forged header changes nothing.
        victim.cookies.set(CSRF_COOKIE, attacker_csrf)
        planted = await victim.post("/v1/account/keys", json={"name": "planted"},
                                    headers={CSRF_HEADER: attacker_csrf})
        assert planted.status_code == 403, planted.text
        assert (await victim.get("/v1/account/keys")).json()["data"] == []

        # Each session's own token still works, and only on its own session.
        own = await victim.post("/v1/account/keys", json={"name": "own"},
                                headers={CSRF_HEADER: victim_csrf})
        assert own.status_code == 201, own.text
        theirs = await attacker.post("/v1/account/keys", json={"name": "theirs"},
                                     headers={CSRF_HEADER: victim_csrf})
        assert theirs.status_code == 403
        mine = await attacker.post("/v1/account/keys", json={"name": "mine"},
                                   headers={CSRF_HEADER: attacker_csrf})
        assert mine.status_code == 201, mine.text
        assert [key["name"] for key in (await victim.get("/v1/account/keys")).json()["data"]] \
            == ["own"]
        assert attacker_session["account"]["id"] != victim_session["account"]["id"]
