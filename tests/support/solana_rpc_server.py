"""A Solana JSON-RPC endpoint on loopback, answering ``getSignaturesForAddress`` and
``getTransaction`` the way a mainnet node does, from payments executed on a LiteSVM chain.

Tests script it: publish a payment as confirmed, finalize it later, make the endpoint fail with
HTTP 500. It holds the client to the real node's rules: a v0 transaction needs
``maxSupportedTransactionVersion``, commitment below ``confirmed`` is refused, and
``getTransaction`` at ``finalized`` answers ``null`` until the transaction is finalized.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from support.solana_chain import ExecutedPayment

COMMITMENTS = ("confirmed", "finalized")


@dataclass
class FakeSolanaRpc:
    failing_status: int | None = None  # answer every request with this HTTP status
    garbage: str | None = None  # answer every request 200 with this body instead
    delay_s: float = 0.0  # think this long before answering
    requests: list[dict[str, Any]] = field(default_factory=list)
    _payments: dict[str, ExecutedPayment] = field(default_factory=dict)
    _by_address: dict[str, list[str]] = field(default_factory=dict)  # newest first
    _finalized: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    url: str = ""

    def publish(self, payment: ExecutedPayment, *, finalized: bool = False) -> None:
        """The payment has landed (confirmed); every account it names now lists it."""
        self._payments[payment.signature] = payment
        for address in payment.accounts:
            self._by_address.setdefault(address, []).insert(0, payment.signature)
        if finalized:
            self.finalize(payment.signature)

    def finalize(self, signature: str) -> None:
        self._finalized.add(signature)

    def calls(self, method: str) -> list[list[Any]]:
        return [r["params"] for r in self.requests if r.get("method") == method]

    async def start(self) -> FakeSolanaRpc:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failing_status is not None:
            return web.Response(status=self.failing_status, text="upstream unavailable")
        if self.garbage is not None:
            return web.Response(text=self.garbage, content_type="application/json")
        method, params, request_id = body.get("method"), body.get("params", []), body.get("id")
        handler = {"getSignaturesForAddress": self._signatures,
                   "getTransaction": self._transaction}.get(method)
        if handler is None:
            return _error(request_id, -32601, "Method not found")
        return handler(request_id, params)

    def _signatures(self, request_id: Any, params: list[Any]) -> web.Response:
        address, config = params[0], (params[1] if len(params) > 1 else {})
        commitment = config.get("commitment", "finalized")
        if commitment not in COMMITMENTS:
            return _error(request_id, -32602,
                          "Method does not support commitment below `confirmed`")
        limit = config.get("limit", 1000)
        listed = self._by_address.get(address, [])
        # A mainnet node's paging: strictly older than ``before``, strictly newer than ``until``.
        if config.get("before") in listed:
            listed = listed[listed.index(config["before"]) + 1:]
        if config.get("until") in listed:
            listed = listed[:listed.index(config["until"])]
        entries = []
        for signature in listed:
            final = signature in self._finalized
            if commitment == "finalized" and not final:
                continue
            entries.append(self._payments[signature].signature_entry(
                "finalized" if final else "confirmed"
            ))
        return web.json_response({"jsonrpc": "2.0", "result": entries[:limit], "id": request_id})

    def _transaction(self, request_id: Any, params: list[Any]) -> web.Response:
        signature, config = params[0], (params[1] if len(params) > 1 else {})
        if config.get("encoding") != "jsonParsed":
            return _error(request_id, -32602, "this endpoint only renders jsonParsed")
        commitment = config.get("commitment", "finalized")
        if commitment not in COMMITMENTS:
            return _error(request_id, -32602,
                          "Method does not support commitment below `confirmed`")
        payment = self._payments.get(signature)
        if payment is None or (commitment == "finalized" and signature not in self._finalized):
            return web.json_response({"jsonrpc": "2.0", "result": None, "id": request_id})
        if payment.result["version"] != "legacy" and config.get(
            "maxSupportedTransactionVersion"
        ) is None:
            return _error(
                request_id, -32015,
                "Transaction version (0) is not supported by the requesting client. Please try "
                "the request again with the following configuration parameter: "
                "\"maxSupportedTransactionVersion\": 0",
            )
        return web.json_response(payment.response(request_id))


def _error(request_id: Any, code: int, message: str) -> web.Response:
    return web.json_response(
        {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}
    )


def refused_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
