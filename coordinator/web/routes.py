"""The dashboard's routes: pages, static assets, and the public JSON the pages need.

    GET /, /models, /leaderboard, /points, /signin      public pages
    GET /dashboard, /credits, /run-a-node              signed-in pages (else 302 to /signin)
    GET /static/...                                    CSS, ES modules, icons
    GET /v1/network/models                             the live models, without an API key
    GET /v1/network/pricing                            what a credit costs in USD, starter credits
    GET /v1/account/topups/{id}/qr.svg   (session)     the invoice's Solana Pay link as a QR code

and, from accounts: /v1/account/nodes, /v1/account/activity, /v1/account/wallet,
/auth/oidc/start and /auth/oidc/callback.
"""

from __future__ import annotations

import io
import logging
from decimal import Decimal
from urllib.parse import quote, urlencode

import segno
from aiohttp import web
from sqlalchemy import select

from coordinator.accounts.activity import add_activity_routes
from coordinator.accounts.auth import require_session
from coordinator.accounts.link_routes import add_link_routes
from coordinator.accounts.needs import ACCOUNT_NEEDS
from coordinator.accounts.next_path import safe_next
from coordinator.accounts.node_routes import add_account_node_routes
from coordinator.accounts.oidc import add_oidc_routes
from coordinator.accounts.sessions import session_account
from coordinator.accounts.topup_routes import topup_view
from coordinator.catalogue import MICRO
from coordinator.errors import NotFound
from coordinator.gateway.errors import Handler, is_api_path
from coordinator.gateway.models import live_models
from coordinator.json_http import json_reply
from coordinator.settings import CoordinatorSettings
from coordinator.store.models import TopupInvoice
from coordinator.web.render import PAGES, STATIC_DIR, Page, render, render_error
from coordinator.web.schemas import NetworkPricing

log = logging.getLogger(__name__)
HTML = "text/html"
SIGNIN_PATH = "/signin"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self';"
    " script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
}


async def _signed_in(request: web.Request) -> bool:
    token = request.cookies.get("koretex_session")
    if not token:
        return False
    services = request.app[ACCOUNT_NEEDS]
    return await session_account(services.database, token, services.clock.now()) is not None


def site_facts(settings: CoordinatorSettings) -> dict[str, object]:
    """What every page may show without asking: sign-in options and the product's name."""
    return {
        "oidc": settings.oidc.provider_name if settings.oidc.enabled else None,
        "topups": settings.topups.treasury is not None,
    }


def page_handler(page: Page) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        signed_in = await _signed_in(request)
        if page.signed_in and not signed_in:
            raise web.HTTPFound(f"/signin?next={quote(request.path_qs, safe='/')}")
        if page.path == SIGNIN_PATH:
            _refuse_foreign_next(request)
        settings = request.app[ACCOUNT_NEEDS].settings
        body = render(page, signed_in=signed_in, site=site_facts(settings))
        return web.Response(text=body, content_type=HTML, headers=PAGE_HEADERS)

    return handler


def _refuse_foreign_next(request: web.Request) -> None:
    """A sign-in link whose ``next`` would leave the site is rewritten to one that stays."""
    target = request.query.get("next")
    if target is None or safe_next(target) == target:
        return
    query = dict(request.query)
    query["next"] = safe_next(target)
    raise web.HTTPFound(f"{SIGNIN_PATH}?{urlencode(query)}")


async def favicon(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/static/favicon.svg")


async def network_models(request: web.Request) -> web.Response:
    """``/v1/models``' answer for anyone: the models page is public."""
    return json_reply(live_models(request))


async def network_pricing(request: web.Request) -> web.Response:
    economy = request.app[ACCOUNT_NEEDS].settings.economy
    usd_per_credit = Decimal(MICRO) / Decimal(economy.credits_per_usdc)
    pricing = NetworkPricing(
        usd_per_credit=float(usd_per_credit),
        credits_per_usdc=economy.credits_per_usdc / MICRO,
        starter_credits=economy.starter_credits / MICRO,
        provider_share=economy.provider_share_bps / 10_000,
    )
    return json_reply(pricing)


async def topup_qr(request: web.Request) -> web.Response:
    """The invoice's ``solana:`` link as an SVG QR code, drawn on the server."""
    account_id = await require_session(request)
    services = request.app[ACCOUNT_NEEDS]
    topup_id = request.match_info["topup_id"][:32]
    async with services.database.session() as session:
        invoice = await session.scalar(select(TopupInvoice).where(
            TopupInvoice.id == topup_id, TopupInvoice.account_id == account_id
        ))
    view = topup_view(invoice, services.settings.topups) if invoice is not None else None
    if view is None or view.payment_url is None:
        raise NotFound(f"no payable top-up {topup_id!r} on this account", param="topup_id")
    out = io.BytesIO()
    segno.make(view.payment_url, error="m").save(
        out, kind="svg", scale=4, border=2, dark="#0b1020", light="#ffffff", xmldecl=False,
        svgns=True, title="Solana Pay QR code", nl=False,
    )
    return web.Response(body=out.getvalue(), content_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=3600"})


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pages fail as pages: an HTML 404 or 500 in the site's layout, never JSON or a trace.

    Inside ``openai_errors``, so it sees a page's failure first; API routes (every /v1 route,
    /healthz, /install.sh) pass straight through to answer JSON errors.
    """
    if is_api_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headline = "Page not found" if exc.status == 404 else exc.reason
        detail = ("There is no page at this address." if exc.status == 404
                  else "This request could not be served.")
        body = render_error(exc.status, headline, detail, signed_in=False)
        headers = dict(PAGE_HEADERS)
        if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods that are allowed
            headers["Allow"] = exc.headers["Allow"]
        return web.Response(text=body, status=exc.status, content_type=HTML, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = render_error(500, "Something went wrong",
                            "The coordinator could not show this page. Try again shortly.",
                            signed_in=False)
        return web.Response(text=body, status=500, content_type=HTML, headers=PAGE_HEADERS)


def add_web_routes(app: web.Application, settings: CoordinatorSettings) -> None:
    for page in PAGES:
        app.router.add_get(page.path, page_handler(page))
    app.router.add_static("/static", STATIC_DIR, append_version=False)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/v1/network/models", network_models)
    app.router.add_get("/v1/network/pricing", network_pricing)
    app.router.add_get("/v1/account/topups/{topup_id}/qr.svg", topup_qr)
    add_account_node_routes(app)
    add_link_routes(app)
    add_activity_routes(app)
    add_oidc_routes(app, settings.oidc)



