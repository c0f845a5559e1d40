"""``koretex-coordinator``: run the coordinator and administer it."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

import typer
from aiohttp import web
from aiohttp.log import access_logger
from rich.console import Console

from coordinator.accounts.accounts import open_account
from coordinator.accounts.api_keys import create_key
from coordinator.app import create_app
from coordinator.catalogue import MICRO
from coordinator.cli_models import models_app
from coordinator.economy.grants import grant
from coordinator.economy.ledger import ensure_system_books
from coordinator.settings import CoordinatorSettings
from coordinator.store.database import Database

app = typer.Typer(no_args_is_help=True, help="The Koretex coordinator.")
keys_app = typer.Typer(no_args_is_help=True, help="Consumer API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
console = Console(stderr=True)


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on [default: settings]."),
    port: int = typer.Option(None, help="Port to listen on [default: settings]."),
) -> None:
    """Serve the gateway, the node hub and the dashboard."""
    overrides: dict[str, Any] = {
        k: v for k, v in {"host": host, "port": port}.items() if v is not None
    }
    settings = CoordinatorSettings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        create_app(settings), host=settings.host, port=settings.port,
        handler_cancellation=True, shutdown_timeout=settings.shutdown_grace_s,
        access_log=access_logger if settings.access_log else None,
        print=lambda _: console.print(
            f"koretex coordinator listening on http://{settings.host}:{settings.port}"
        ),
    )


@keys_app.command("create")
def keys_create(
    name: str = typer.Option("default", help="A name to recognise the key by."),
    account: str = typer.Option("local", help="The local account the key spends from."),
    credits: float = typer.Option(
        None, help="Credits to grant the account now [default: the starter amount]."
    ),
) -> None:
    """Create an API key for a local account, grant it credits, print the key (shown once)."""

    async def run() -> str:
        settings = CoordinatorSettings()
        database = await Database.open(settings.database_url)
        try:
            now = datetime.now(UTC)
            books = await ensure_system_books(database, now)
            amount = (
                settings.economy.starter_credits if credits is None else round(credits * MICRO)
            )
            async with database.session() as session, session.begin():
                owner = await open_account(session, books, now, 0, label=account)
                await grant(session, books, owner.id, amount, now,
                            reference=f"operator-grant:{secrets.token_hex(8)}",
                            memo=f"granted by the operator with key {name!r}")
                _, secret = await create_key(session, owner.id, name, now)
            return secret
        finally:
            await database.close()

    print(asyncio.run(run()))


@keys_app.command("rotate-master")
def keys_rotate_master(
    new_key: str = typer.Option(
        None, envvar="KORETEX_NEW_MASTER_KEY", show_default=False,
        help="The new cloud master key (64 hex digits or base64 of 32 bytes) [default: a fresh"
        " one, printed].",
    ),
) -> None:
    """Re-seal every stored cloud-node token under a new master key, in one transaction.

    Stop the coordinator (every replica) first: a running one would seal new tokens under the
    old key. The current key is read from KORETEX_CLOUD__MASTER_KEY; afterwards set that
    variable to the new key and start the coordinator again (it refuses the old one).
    """
    from coordinator.cloud.fleet import CloudNodesMisconfigured, rotate_master_key, sealer_from
    from coordinator.cloud.sealing import MasterKeyInvalid, TokenSealer, new_master_key

    settings = CoordinatorSettings()
    try:
        old = sealer_from(settings.cloud)
        replacement = new_key or new_master_key()
        new = TokenSealer.from_setting(replacement)
    except (CloudNodesMisconfigured, MasterKeyInvalid) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if old is None:
        console.print("[red]KORETEX_CLOUD__MASTER_KEY is not set: set it to the current key[/red]")
        raise typer.Exit(2)

    async def run() -> int:
        database = await Database.open(settings.database_url)
        try:
            return await rotate_master_key(database, old, new)
        finally:
            await database.close()

    try:
        count = asyncio.run(run())
    except CloudNodesMisconfigured as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"re-sealed {count} cloud-node token(s); set KORETEX_CLOUD__MASTER_KEY to the new key"
        " and restart the coordinator"
    )
    if new_key is None:
        print(replacement)


def main() -> None:
    app()
