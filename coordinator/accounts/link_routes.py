"""Linking a Solana wallet to an account opened another way (OpenID sign-in).

    POST /v1/account/wallet  (session) {message, signature, public_key} -> AccountView

The body is exactly Sign-In With Solana's verify body, nonce and all: the wallet proves itself the
same way it signs in, and from then on either the wallet or the OpenID identity opens the account.
(The other direction, an OpenID identity joining a wallet account, is ``/auth/oidc/start?link=1``.)
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from coordinator.accounts.auth import require_session
from coordinator.accounts.needs import ACCOUNT_NEEDS
from coordinator.accounts.routes import sign_in_policy
from coordinator.accounts.schemas import VerifyRequest
from coordinator.accounts.sessions import consume_sign_in_nonce
from coordinator.accounts.siws import check_sign_in, parse_message, verify_signature
from coordinator.accounts.statements import account_view
from coordinator.errors import InvalidRequest, PermissionDenied
from coordinator.json_http import json_reply, read_body
from coordinator.limits.enforce import limit_ip
from coordinator.store.models import Account

TAKEN = "this wallet already signs in to another account"


async def link_wallet(request: web.Request) -> web.Response:
    """Check the signed sign-in message, consume its nonce, and give the account its wallet."""
    await limit_ip(request)
    account_id = await require_session(request)
    services = request.app[ACCOUNT_NEEDS]
    body = await read_body(request, VerifyRequest)
    now = services.clock.now()
    fields = parse_message(body.message)
    verify_signature(body.message, body.signature, body.public_key)
    nonce = check_sign_in(fields, body.public_key, sign_in_policy(services.settings), now)
    try:
        async with services.database.session() as session, session.begin():
            await consume_sign_in_nonce(session, nonce, fields.address, now)
            holder = await session.scalar(
                select(Account.id).where(Account.wallet == fields.address)
            )
            if holder is not None and holder != account_id:
                raise PermissionDenied(TAKEN)
            current = await session.scalar(
                select(Account.wallet).where(Account.id == account_id)
            )
            if current is not None and current != fields.address:
                raise InvalidRequest("this account already has a wallet")
            await session.execute(
                update(Account).where(Account.id == account_id).values(wallet=fields.address)
            )
            view = await account_view(session, account_id)
    except IntegrityError as exc:  # another account took the wallet in the meantime
        raise PermissionDenied(TAKEN) from exc
    return json_reply(view)


def add_link_routes(app: web.Application) -> None:
    app.router.add_post("/v1/account/wallet", link_wallet)
