"""Sign-in with OpenID Connect: the authorization code flow with PKCE, state and nonce.

    GET /auth/oidc/start?next=/dashboard[&link=1]  -> 302 to the provider's authorization page
    GET /auth/oidc/callback?code=&state=           -> 302 to ``next`` signed in (or linked)

The flow's secrets (state, nonce, PKCE verifier, where to go next) travel in one short-lived
HttpOnly cookie, MACed with a key derived from the client secret, so any replica can finish a
flow another one started. The ID token is verified against the issuer's JWKS with joserfc: the
signature, ``iss``, ``aud``, ``exp`` and the ``nonce`` this browser was given. The identity is
``issuer + "#" + sub`` (``sub`` alone is only unique per issuer).

With ``link=1`` a signed-in account gains the identity (so it can sign in with either); otherwise
the identity signs in to its account, opened on first sight.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp
from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from coordinator.accounts.accounts import open_account
from coordinator.accounts.auth import session_token
from coordinator.accounts.cookies import is_secure, set_session_cookies
from coordinator.accounts.needs import ACCOUNT_NEEDS
from coordinator.accounts.next_path import safe_next
from coordinator.accounts.sessions import open_session, session_account
from coordinator.errors import AuthenticationFailed, CoordinatorError, InvalidRequest
from coordinator.limits.enforce import starter_allowed
from coordinator.settings.oidc import OidcSettings
from coordinator.store.models import Account

FLOW_COOKIE = "koretex_oidc"
CALLBACK_PATH = "/auth/oidc/callback"
ID_TOKEN_ALGORITHMS = ("RS256", "ES256", "PS256", "EdDSA")


@dataclass(frozen=True)
class Flow:
    """One sign-in in progress, as kept in the browser's flow cookie."""

    state: str
    nonce: str
    verifier: str
    next: str
    link: bool
    expires_at: float


@dataclass(frozen=True)
class Identity:
    subject: str  # issuer#sub
    email: str | None


# --- pure: the flow cookie, PKCE, the authorization URL, the ID token ----------------------------


def _mac_key(settings: OidcSettings) -> bytes:
    return hashlib.sha256(b"koretex-oidc-flow\0" + settings.client_secret.encode()).digest()


def seal_flow(flow: Flow, settings: OidcSettings) -> str:
    body = base64.urlsafe_b64encode(json.dumps(asdict(flow)).encode()).decode().rstrip("=")
    tag = hmac.new(_mac_key(settings), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{tag}"


def open_flow(sealed: str, settings: OidcSettings, now: float) -> Flow:
    """The flow in the cookie, if it is ours, intact and not expired."""
    body, _, tag = sealed.partition(".")
    expected = hmac.new(_mac_key(settings), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, tag):
        raise AuthenticationFailed("sign-in could not be verified: start again")
    flow = Flow(**json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    if flow.expires_at <= now:
        raise AuthenticationFailed("sign-in took too long: start again")
    return flow


def pkce_challenge(verifier: str) -> str:
    """S256: base64url(sha256(verifier)) without padding (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_flow(next_path: str | None, link: bool, now: float, ttl_s: float) -> Flow:
    return Flow(
        state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48), next=safe_next(next_path), link=link,
        expires_at=now + ttl_s,
    )


def authorization_url(endpoint: str, settings: OidcSettings, flow: Flow, redirect_uri: str) -> str:
    query = urlencode({
        "response_type": "code", "client_id": settings.client_id, "redirect_uri": redirect_uri,
        "scope": settings.scopes, "state": flow.state, "nonce": flow.nonce,
        "code_challenge": pkce_challenge(flow.verifier), "code_challenge_method": "S256",
    })
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def client_basic_auth(settings: OidcSettings) -> str:
    """``client_secret_basic`` (RFC 6749 §2.3.1): both parts form-encoded before base64."""
    pair = f"{quote_plus(settings.client_id)}:{quote_plus(settings.client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def verify_id_token(
    id_token: str, keys: KeySet, issuer: str, client_id: str, nonce: str, now: int
) -> Identity:
    """The identity an ID token vouches for, after every check OpenID Connect Core asks."""
    try:
        token = jwt.decode(id_token, keys, algorithms=list(ID_TOKEN_ALGORITHMS))
        jwt.JWTClaimsRegistry(
            now=now, leeway=60,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise AuthenticationFailed(f"the provider's ID token was refused: {exc}") from exc
    email = token.claims.get("email")
    return Identity(subject=f"{issuer}#{token.claims['sub']}",
                    email=email if isinstance(email, str) else None)


# --- the provider, over HTTP ---------------------------------------------------------------------


class Provider:
    """The issuer's discovery document and keys, fetched once and refreshed on an unknown key."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._http: aiohttp.ClientSession | None = None
        self._config: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        if self._http is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.http_timeout_s)
            self._http = aiohttp.ClientSession(timeout=timeout)
        method = "POST" if "data" in kwargs else "GET"
        try:
            async with self._http.request(method, url, **kwargs) as response:
                body = await response.json(content_type=None)
                if response.status != 200 or not isinstance(body, dict):
                    raise AuthenticationFailed(
                        f"the sign-in provider answered {response.status}: "
                        f"{str(body)[:200] if body else ''}"
                    )
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise CoordinatorError("the sign-in provider could not be reached") from exc

    async def config(self) -> dict[str, Any]:
        if self._config is None:
            issuer = (self.settings.issuer or "").rstrip("/")
            config = await self._get_json(f"{issuer}/.well-known/openid-configuration")
            if str(config.get("issuer", "")).rstrip("/") != issuer:
                raise CoordinatorError("the provider's discovery document names another issuer")
            self._config = config
        return self._config

    async def keys(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            config = await self.config()
            self._keys = KeySet.import_key_set(await self._get_json(config["jwks_uri"]))  # type: ignore[arg-type]
        return self._keys

    async def redeem(self, code: str, flow: Flow, redirect_uri: str, now: int) -> Identity:
        """Trade the code (with its PKCE verifier) for tokens and verify the ID token."""
        config = await self.config()
        tokens = await self._get_json(
            config["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": redirect_uri, "code_verifier": flow.verifier},
            headers={"Authorization": client_basic_auth(self.settings)},
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise AuthenticationFailed("the provider sent no ID token")
        issuer = str(config["issuer"])
        try:
            return verify_id_token(id_token, await self.keys(), issuer,
                                   self.settings.client_id, flow.nonce, now)
        except AuthenticationFailed:
            # A rotated signing key: fetch the set again once before refusing.
            return verify_id_token(id_token, await self.keys(refresh=True), issuer,
                                   self.settings.client_id, flow.nonce, now)


OIDC_PROVIDER = web.AppKey("oidc_provider", Provider)


# --- the two routes ------------------------------------------------------------------------------


def _redirect_uri(request: web.Request) -> str:
    return request.app[ACCOUNT_NEEDS].settings.public_base_url + CALLBACK_PATH


def _to_signin(error: str, next_path: str = "/dashboard") -> web.HTTPFound:
    return web.HTTPFound("/signin?" + urlencode({"error": error, "next": next_path}))


async def oidc_start(request: web.Request) -> web.StreamResponse:
    """Send the browser to the provider with a fresh state, nonce and PKCE challenge."""
    services = request.app[ACCOUNT_NEEDS]
    settings = services.settings
    if not settings.oidc.enabled:
        raise _to_signin("OpenID sign-in is not configured on this coordinator")
    flow = new_flow(request.query.get("next"), request.query.get("link") == "1",
                    services.clock.now().timestamp(), settings.oidc.flow_ttl_s)
    try:
        config = await request.app[OIDC_PROVIDER].config()
    except CoordinatorError as exc:
        raise _to_signin(exc.message, flow.next) from exc
    response = web.HTTPFound(authorization_url(
        config["authorization_endpoint"], settings.oidc, flow, _redirect_uri(request)
    ))
    response.set_cookie(
        FLOW_COOKIE, seal_flow(flow, settings.oidc), max_age=int(settings.oidc.flow_ttl_s),
        path="/auth/oidc", httponly=True, samesite="Lax",
        secure=is_secure(settings.public_base_url),
    )
    raise response


async def oidc_callback(request: web.Request) -> web.StreamResponse:
    """Finish the flow: check state, redeem the code, sign in or link, go back to ``next``."""
    services = request.app[ACCOUNT_NEEDS]
    settings = services.settings
    sealed = request.cookies.get(FLOW_COOKIE)
    if sealed is None or not settings.oidc.enabled:
        raise _to_signin("sign-in expired or was started elsewhere: start again")
    try:
        flow = open_flow(sealed, settings.oidc, services.clock.now().timestamp())
        if not hmac.compare_digest(flow.state, request.query.get("state", "")):
            raise AuthenticationFailed("sign-in state does not match: start again")
        if "error" in request.query:
            why = request.query.get("error_description") or request.query["error"]
            raise AuthenticationFailed(f"the provider refused: {why}")
        code = request.query.get("code")
        if not code:
            raise InvalidRequest("the provider sent no authorization code")
        identity = await request.app[OIDC_PROVIDER].redeem(
            code, flow, _redirect_uri(request), int(services.clock.now().timestamp())
        )
        token: str | None = None
        if flow.link:
            await _link(request, identity)
        else:
            token = await _sign_in(request, identity)
    except CoordinatorError as exc:
        response = _to_signin(exc.message)
        response.del_cookie(FLOW_COOKIE, path="/auth/oidc")
        raise response from exc
    response = web.HTTPFound(flow.next)
    response.del_cookie(FLOW_COOKIE, path="/auth/oidc")
    if token is not None:
        set_session_cookies(response, token, settings.session_ttl_s,
                            secure=is_secure(settings.public_base_url))
    raise response


async def _sign_in(request: web.Request, identity: Identity) -> str:
    services = request.app[ACCOUNT_NEEDS]
    now = services.clock.now()
    ttl = services.settings.session_ttl_s
    async with services.database.session() as session, session.begin():
        account = await open_account(
            session, services.ledger.books, now, services.settings.economy.starter_credits,
            oidc_subject=identity.subject, email=identity.email,
            starter_allowed=lambda: starter_allowed(request),
        )
        return await open_session(session, account.id, now, timedelta(seconds=ttl))


async def _link(request: web.Request, identity: Identity) -> None:
    """Attach the identity to the signed-in account (the session cookie stays as it is)."""
    services = request.app[ACCOUNT_NEEDS]
    token = session_token(request)
    account_id = (
        await session_account(services.database, token, services.clock.now()) if token else None
    )
    if account_id is None:
        raise AuthenticationFailed("sign in with your wallet first, then link")
    async with services.database.session() as session, session.begin():
        holder = await session.scalar(
            select(Account.id).where(Account.oidc_subject == identity.subject)
        )
        if holder is not None and holder != account_id:
            raise AuthenticationFailed("that identity already signs in to another account")
        await session.execute(
            update(Account).where(Account.id == account_id)
            .values(oidc_subject=identity.subject, email=identity.email)
        )


async def _provider_lifecycle(app: web.Application) -> AsyncIterator[None]:
    provider = app[OIDC_PROVIDER]
    yield
    await provider.close()


def add_oidc_routes(app: web.Application, settings: OidcSettings) -> None:
    app[OIDC_PROVIDER] = Provider(settings)
    app.cleanup_ctx.append(_provider_lifecycle)
    app.router.add_get("/auth/oidc/start", oidc_start)
    app.router.add_get(CALLBACK_PATH, oidc_callback)
