"""Enrolling nodes over HTTP: minting tokens, and serving the installer that redeems them.

    POST /v1/account/enrollments  (session)  -> 201 {token, expires_at, install_command}
    GET  /install.sh                         -> the one-line installer (text/x-shellscript)

The token is redeemed when the node registers on ``/v1/nodes/connect``
(:mod:`coordinator.hub.connect`); its rules live in :mod:`coordinator.accounts.enrollment`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from coordinator.accounts.auth import require_session
from coordinator.accounts.enrollment import install_command, mint
from coordinator.hub.needs import HUB_NEEDS
from coordinator.limits.enforce import limit_ip
from installer.assets import install_script


class EnrollmentIssued(BaseModel):
    model_config = ConfigDict(frozen=True)

    token: str
    expires_at: datetime
    install_command: str


async def create_enrollment(request: web.Request) -> web.Response:
    """A one-time token (shown in this response only) and the command that uses it."""
    await limit_ip(request)
    account_id = await require_session(request)
    services = request.app[HUB_NEEDS]
    settings = services.settings
    now = services.clock.now()
    async with services.database.session() as session, session.begin():
        minted = await mint(session, account_id, now, timedelta(seconds=settings.enrollment_ttl_s))
    issued = EnrollmentIssued(
        token=minted.token, expires_at=minted.expires_at,
        install_command=install_command(settings.public_base_url, minted.token),
    )
    return web.Response(
        status=201, text=issued.model_dump_json(), content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def get_install_script(request: web.Request) -> web.Response:
    return web.Response(
        text=install_script(), content_type="text/x-shellscript",
        headers={"Cache-Control": "no-cache"},
    )


def add_enrollment_routes(app: web.Application) -> None:
    app.router.add_post("/v1/account/enrollments", create_enrollment)
    app.router.add_get("/install.sh", get_install_script)
