"""The sign-in and account API: Sign-In With Solana, sessions, balance, ledger, usage, API keys.

    POST   /v1/auth/siws/nonce     {address}                  -> NonceIssued
    POST   /v1/auth/siws/verify    {message, signature, public_key} -> SignedIn
    POST   /v1/auth/logout         (session)                  -> 204
    GET    /v1/account             (session)                  -> AccountView
    GET    /v1/account/ledger      (session) ?limit=&before=  -> LedgerPage
    GET    /v1/account/usage       (session)                  -> UsageReport
    POST   /v1/account/keys        (session) {name, spend_limit_credits?} -> 201 CreatedKey
    GET    /v1/account/keys        (session)                  -> KeyList
    DELETE /v1/account/keys/{id}   (session)                  -> KeyView (revoked)

Account routes take a session token (``kts-…``) from sign-in, never an API key: a leaked key
spends credits but cannot mint more keys or read the account's history.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pydantic
from aiohttp import web
from sqlalchemy import delete, func, insert, literal, select, update

from coordinator.accounts.accounts import open_account
from coordinator.accounts.api_keys import create_key
from coordinator.accounts.auth import require_session, session_token
from coordinator.accounts.cookies import clear_session_cookies, is_secure, set_session_cookies
from coordinator.accounts.needs import ACCOUNT_NEEDS
from coordinator.accounts.schemas import (
    CreatedKey,
    CreateKeyRequest,
    KeyList,
    LedgerQuery,
    NonceIssued,
    NonceRequest,
    SignedIn,
    VerifyRequest,
)
from coordinator.accounts.sessions import close_session, consume_sign_in_nonce, open_session
from coordinator.accounts.siws import (
    SignInPolicy,
    check_sign_in,
    message_text,
    new_nonce,
    parse_message,
    public_key_bytes,
    sign_in_input,
    to_milliseconds,
    verify_signature,
)
from coordinator.accounts.statements import (
    account_keys,
    account_view,
    key_view,
    ledger_page,
    settled_here,
    usage_report,
)
from coordinator.errors import InsufficientCredits, InvalidRequest, NotFound
from coordinator.json_http import Body, invalid_request, json_reply, read_body
from coordinator.limits.enforce import limit_account_keys, limit_ip, starter_allowed
from coordinator.settings import CoordinatorSettings
from coordinator.store.models import Account, ApiKey, SignInNonce


def sign_in_policy(settings: CoordinatorSettings) -> SignInPolicy:
    return SignInPolicy(
        domain=settings.domain, uri=settings.siws_uri, chain_id=settings.siws_chain_id,
        statement=settings.siws_statement,
        nonce_ttl=timedelta(seconds=settings.signin_nonce_ttl_s),
        clock_skew=timedelta(seconds=settings.siws_clock_skew_s),
    )


# --- sign-in --------------------------------------------------------------------------------------


async def siws_nonce(request: web.Request) -> web.Response:
    """A single-use nonce for this wallet and the exact sign-in message to sign with it."""
    services = request.app[ACCOUNT_NEEDS]
    body = await read_body(request, NonceRequest)
    if public_key_bytes(body.address) is None:
        raise InvalidRequest(
            "address must be a base58 ed25519 public key (a Solana wallet address)",
            param="address",
        )
    policy = sign_in_policy(services.settings)
    now = to_milliseconds(services.clock.now())
    nonce = new_nonce()
    fields = sign_in_input(body.address, nonce, now, policy)
    async with services.database.session() as session, session.begin():
        # Nonces are short-lived; sweeping the dead ones here keeps the table at the live few.
        await session.execute(delete(SignInNonce).where(SignInNonce.expires_at <= now))
        await session.execute(insert(SignInNonce).values(
            nonce=nonce, address=body.address, issued_at=now, expires_at=now + policy.nonce_ttl,
        ))
    issued = NonceIssued(input=fields, message=message_text(fields),
                         expires_at=now + policy.nonce_ttl)
    return json_reply(issued, exclude_none=True)


async def siws_verify(request: web.Request) -> web.Response:
    """Check a signed sign-in message, consume its nonce, open the account and a session."""
    services = request.app[ACCOUNT_NEEDS]
    settings = services.settings
    body = await read_body(request, VerifyRequest)
    now = services.clock.now()
    fields = parse_message(body.message)
    verify_signature(body.message, body.signature, body.public_key)
    nonce = check_sign_in(fields, body.public_key, sign_in_policy(settings), now)
    session_ttl = timedelta(seconds=settings.session_ttl_s)
    async with services.database.session() as session, session.begin():
        await consume_sign_in_nonce(session, nonce, fields.address, now)
        account = await open_account(
            session, services.ledger.books, now, settings.economy.starter_credits,
            wallet=fields.address, starter_allowed=lambda: starter_allowed(request),
        )
        token = await open_session(session, account.id, now, session_ttl)
        view = await account_view(session, account.id)
    reply = json_reply(SignedIn(token=token, expires_at=now + session_ttl, account=view))
    # A browser keeps the session in an HttpOnly cookie; API clients use the token. Only for a
    # JSON request: a cross-site form (which cannot send one) must not sign a browser in.
    if request.content_type == "application/json":
        set_session_cookies(
            reply, token, settings.session_ttl_s, secure=is_secure(settings.public_base_url)
        )
    return reply


async def logout(request: web.Request) -> web.Response:
    """Close the session whose token authorises this request."""
    await require_session(request)
    token = session_token(request)
    assert token is not None  # require_session passed
    await close_session(request.app[ACCOUNT_NEEDS].database, token)
    response = web.Response(status=204)
    clear_session_cookies(response)
    return response


# --- the account ----------------------------------------------------------------------------------


async def get_account(request: web.Request) -> web.Response:
    account_id = await require_session(request)
    await settled_here(request.app[ACCOUNT_NEEDS].ledger)
    async with request.app[ACCOUNT_NEEDS].database.session() as session:
        return json_reply(await account_view(session, account_id))


async def get_ledger(request: web.Request) -> web.Response:
    account_id = await require_session(request)
    query = _validate(LedgerQuery, dict(request.query), "query")
    await settled_here(request.app[ACCOUNT_NEEDS].ledger)
    async with request.app[ACCOUNT_NEEDS].database.session() as session:
        return json_reply(await ledger_page(session, account_id, query.limit, query.before))


async def get_usage(request: web.Request) -> web.Response:
    account_id = await require_session(request)
    await settled_here(request.app[ACCOUNT_NEEDS].ledger)
    async with request.app[ACCOUNT_NEEDS].database.session() as session:
        return json_reply(await usage_report(session, account_id))


# --- API keys -------------------------------------------------------------------------------------


async def create_account_key(request: web.Request) -> web.Response:
    """Mint a key; its secret is in this response and nowhere else, ever."""
    await limit_ip(request)
    account_id = await require_session(request)
    body = await read_body(request, CreateKeyRequest)
    await limit_account_keys(request, account_id)
    services = request.app[ACCOUNT_NEEDS]
    now = services.clock.now()
    async with services.database.session() as session, session.begin():
        # Write first, check after (raising rolls the key back): a transaction that reads and
        # then writes can be refused outright by SQLite when another write lands in between.
        row, secret = await create_key(session, account_id, body.name, now, body.spend_limit)
        available = await session.scalar(
            select(Account.balance - Account.reserved).where(Account.id == account_id)
        )
        if available is None or available <= 0:
            raise InsufficientCredits("an API key needs credits to spend: top up first")
        view = key_view(row)
    return json_reply(CreatedKey(secret=secret, **view.model_dump()), status=201)


async def list_account_keys(request: web.Request) -> web.Response:
    account_id = await require_session(request)
    async with request.app[ACCOUNT_NEEDS].database.session() as session:
        return json_reply(KeyList(data=await account_keys(session, account_id)))


async def revoke_account_key(request: web.Request) -> web.Response:
    """Revoke a key of this account (again is harmless: 200 with the first revocation time).

    The key stops working on this replica at once; other replicas drop their cached answer
    within the key cache's TTL (seconds).
    """
    account_id = await require_session(request)
    services = request.app[ACCOUNT_NEEDS]
    raw_id = request.match_info["key_id"]
    key_id = int(raw_id) if raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 19 else None
    if key_id is None:
        raise NotFound(f"no API key {raw_id!r} on this account", param="key_id")
    now = literal(services.clock.now(), ApiKey.__table__.c.revoked_at.type)
    async with services.database.session() as session, session.begin():
        key = await session.scalar(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.account_id == account_id)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, now))
            .returning(ApiKey)
        )
        if key is None:
            raise NotFound(f"no API key {raw_id!r} on this account", param="key_id")
        view = key_view(key)
    services.keys.forget(key.secret_hash)
    return json_reply(view)


def add_account_routes(app: web.Application) -> None:
    app.router.add_post("/v1/auth/siws/nonce", siws_nonce)
    app.router.add_post("/v1/auth/siws/verify", siws_verify)
    app.router.add_post("/v1/auth/logout", logout)
    app.router.add_get("/v1/account", get_account)
    app.router.add_get("/v1/account/ledger", get_ledger)
    app.router.add_get("/v1/account/usage", get_usage)
    app.router.add_post("/v1/account/keys", create_account_key)
    app.router.add_get("/v1/account/keys", list_account_keys)
    app.router.add_delete("/v1/account/keys/{key_id}", revoke_account_key)


# --- bodies in, bodies out ------------------------------------------------------------------------


def _validate(model: type[Body], values: dict[str, Any], where: str) -> Body:
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as exc:
        raise invalid_request(exc, where) from exc


