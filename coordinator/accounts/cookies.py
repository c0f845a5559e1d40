"""The browser's session: the session token in an HttpOnly cookie, with a double-submit CSRF token.

The dashboard never sees its session token: sign-in sets it as an ``HttpOnly; SameSite=Lax``
cookie. Beside it goes a readable CSRF cookie whose value the page echoes in the ``X-CSRF-Token``
header of every state-changing request; a cross-site form can send the first cookie (SameSite=Lax
stops most of that already) but can never read the second to forge the header. Requests with an
``Authorization`` header are untouched: API clients keep using bearer tokens.

The CSRF token is bound to its session: it is an HMAC keyed by the session token, so only
someone holding that session's (HttpOnly) token can compute it, a token issued to one session is
refused on every other, and no replica needs to store it. A cookie planted from a sibling
domain, or a token read from another signed-in browser, passes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from aiohttp import web

from coordinator.errors import PermissionDenied

SESSION_COOKIE = "koretex_session"
CSRF_COOKIE = "koretex_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def set_session_cookies(
    response: web.StreamResponse, token: str, max_age_s: float, *, secure: bool
) -> None:
    """Attach the session (living ``max_age_s`` seconds) and a fresh CSRF token to ``response``."""
    max_age = int(max_age_s)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="Lax",
        secure=secure,
    )
    response.set_cookie(
        CSRF_COOKIE, csrf_token_for(token), max_age=max_age, path="/", samesite="Lax",
        secure=secure,
    )


def csrf_token_for(session_token: str) -> str:
    """The one CSRF token the session ``session_token`` accepts."""
    digest = hmac.new(session_token.encode(), b"koretex-csrf-v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def clear_session_cookies(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")


def cookie_session_token(request: web.Request) -> str | None:
    """The session token from the cookie, once the request has passed the CSRF check."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(csrf_token_for(token).encode(), sent.encode()):
            raise PermissionDenied(
                f"missing or wrong {CSRF_HEADER} header: send the {CSRF_COOKIE} cookie's value"
            )
    return token


def is_secure(public_base_url: str) -> bool:
    """Cookies are Secure when the coordinator is reached over HTTPS."""
    return public_base_url.startswith("https://")
