"""``koretex cloud``: register an OpenAI-compatible server you run elsewhere as a cloud node.

The coordinator relays jobs to the server with its API token and pays the signed-in account for
every token it serves. Commands sign in with a session token (``--session`` / KORETEX_SESSION)
or with the wallet's Solana keypair file (``--wallet``), through Sign-In With Solana; a session
opened with the keypair is closed again when the command ends.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import base58
import nacl.signing
import typer
from rich.console import Console
from rich.table import Table

from agent.settings import AgentSettings

cloud_app = typer.Typer(
    no_args_is_help=True,
    help="Cloud nodes: earn from an OpenAI-compatible server you already pay for.",
)
console = Console(stderr=True)

CoordinatorOption = typer.Option(
    None, "--coordinator", "-c", help="Coordinator URL [default: the configured one]."
)
SessionOption = typer.Option(
    None, "--session", envvar="KORETEX_SESSION", show_default=False,
    help="A session token (kts-…) from signing in to the dashboard.",
)
WalletOption = typer.Option(
    None, "--wallet", envvar="KORETEX_WALLET", show_default=False,
    help="Sign in with this Solana keypair file (the JSON array solana-keygen writes).",
)


class CommandFailed(Exception):
    """What to tell the operator; the command exits non-zero."""


class AccountApi:
    """The coordinator's account API over plain HTTP, as one signed-in account."""

    def __init__(self, base_url: str, session: str | None = None, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.session is not None:
            headers["Authorization"] = f"Bearer {self.session}"
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise CommandFailed(_error_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise CommandFailed(f"cannot reach the coordinator at {self.base_url}: {exc}") from None
        return json.loads(raw) if raw else None

    def sign_in(self, key: nacl.signing.SigningKey) -> None:
        """Sign in with a wallet key through Sign-In With Solana."""
        address = base58.b58encode(bytes(key.verify_key)).decode()
        issued = self.call("POST", "/v1/auth/siws/nonce", {"address": address})
        message = str(issued["message"])
        signature = base58.b58encode(key.sign(message.encode()).signature).decode()
        signed = self.call("POST", "/v1/auth/siws/verify", {
            "message": message, "signature": signature, "public_key": address,
        })
        self.session = str(signed["token"])


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the coordinator answered HTTP {exc.code}"


def load_wallet(path: Path) -> nacl.signing.SigningKey:
    """A Solana keypair file: solana-keygen's JSON array of 64 bytes, or the same in base58."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise CommandFailed(f"cannot read the wallet file {path}: {exc.strerror}") from None
    try:
        raw = bytes(json.loads(text)) if text.startswith("[") else base58.b58decode(text)
    except (ValueError, TypeError):
        raise CommandFailed(f"{path} is not a Solana keypair file") from None
    if len(raw) not in (32, 64):
        raise CommandFailed(f"{path} is not a Solana keypair file (expected 64 bytes)")
    return nacl.signing.SigningKey(raw[:32])


def coordinator_url(given: str | None) -> str:
    url = given or AgentSettings().coordinator[0]
    for scheme, http in (("wss://", "https://"), ("ws://", "http://")):
        if url.startswith(scheme):
            url = http + url[len(scheme):]
    return url.rstrip("/")


@contextmanager
def account(
    coordinator: str | None, session: str | None, wallet: Path | None
) -> Iterator[AccountApi]:
    """The account API, signed in; exits with a clear message on any failure."""
    try:
        api = AccountApi(coordinator_url(coordinator), session)
        if session is None:
            if wallet is None:
                raise CommandFailed("sign in first: pass --session TOKEN or --wallet KEYPAIR.json")
            api.sign_in(load_wallet(wallet))
        try:
            yield api
        finally:
            if session is None and api.session is not None:
                with suppress(CommandFailed):
                    api.call("POST", "/v1/auth/logout")
    except CommandFailed as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@cloud_app.command("add")
def add(
    base_url: str = typer.Option(..., help="The server's OpenAI base URL, e.g. https://host/v1."),
    model: str = typer.Option(..., help="The catalogue model it serves, e.g. gemma-3-270m."),
    upstream_model: str = typer.Option(..., help="The server's own name for that model."),
    concurrency: int = typer.Option(1, help="Requests the server may run at once."),
    resume: bool = typer.Option(
        False, help="The server continues a trailing assistant message (vLLM)."
    ),
    token: str = typer.Option(
        ..., envvar="KORETEX_UPSTREAM_TOKEN", prompt="Upstream API token", hide_input=True,
        show_default=False, help="The server's API token (prompted for if not given).",
    ),
    coordinator: str | None = CoordinatorOption,
    session: str | None = SessionOption,
    wallet: Path | None = WalletOption,
) -> None:
    """Register a server; the coordinator checks it with a real completion first."""
    with account(coordinator, session, wallet) as api:
        node = api.call("POST", "/v1/account/cloud-nodes", {
            "base_url": base_url, "token": token, "model": model,
            "upstream_model": upstream_model, "concurrency": concurrency, "resume": resume,
        })
    console.print(f"cloud node [bold]{node['id']}[/bold] added and online serving {model}")
    print(node["id"])


@cloud_app.command("list")
def list_nodes(
    coordinator: str | None = CoordinatorOption,
    session: str | None = SessionOption,
    wallet: Path | None = WalletOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Your cloud nodes (tokens are shown by their last four characters only)."""
    with account(coordinator, session, wallet) as api:
        nodes = api.call("GET", "/v1/account/cloud-nodes")["data"]
    if as_json:
        print(json.dumps(nodes, indent=2))
        return
    table = Table("id", "model", "upstream model", "base URL", "concurrency", "token", "online")
    for node in nodes:
        table.add_row(
            node["id"], node["model"], node["upstream_model"], node["base_url"],
            str(node["concurrency"]), "…" + node["token_last4"], "yes" if node["online"] else "no",
        )
    Console().print(table)


@cloud_app.command("remove")
def remove(
    node_id: str = typer.Argument(..., help="The cloud node's id, as `koretex cloud list` shows."),
    coordinator: str | None = CoordinatorOption,
    session: str | None = SessionOption,
    wallet: Path | None = WalletOption,
) -> None:
    """Take a cloud node offline and forget its server and token."""
    with account(coordinator, session, wallet) as api:
        api.call("DELETE", f"/v1/account/cloud-nodes/{node_id}")
    console.print(f"cloud node {node_id} removed")
