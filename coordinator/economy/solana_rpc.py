"""A small Solana JSON-RPC client: the two calls the top-up watcher needs, answers typed by solders.

Every failure (transport, timeout, HTTP status, JSON-RPC error object, an answer of the wrong
shape) is converted here into :class:`coordinator.errors.SolanaRpcFailed`, so callers handle one
exception type. Messages name what failed but never the endpoint: RPC URLs often embed a
provider's API key.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Literal, TypeVar

import aiohttp
from solders.rpc.responses import (
    GetSignaturesForAddressResp,
    GetTransactionResp,
    RpcConfirmedTransactionStatusWithSignature,
)
from solders.transaction_status import EncodedConfirmedTransactionWithStatusMeta

from coordinator.errors import SolanaRpcFailed

Commitment = Literal["confirmed", "finalized"]
Answer = TypeVar("Answer", GetSignaturesForAddressResp, GetTransactionResp)

GET_TRANSACTION_CONFIG = {
    "encoding": "jsonParsed",
    "maxSupportedTransactionVersion": 0,
    "commitment": "finalized",
}
"""What :meth:`SolanaRpc.transaction` asks for: parsed token balances, v0 transactions included,
and only transactions the cluster has finalized (anything less answers ``null``)."""


class SolanaRpc:
    """One JSON-RPC endpoint over a lazily created aiohttp session; :meth:`close` when done."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def signatures_for_address(
        self, address: str, *, limit: int = 10, commitment: Commitment = "confirmed",
        before: str | None = None, until: str | None = None,
    ) -> list[RpcConfirmedTransactionStatusWithSignature]:
        """The newest transactions that mention ``address`` (newest first): at most ``limit``,
        older than ``before`` and newer than ``until`` when those signatures are given."""
        config: dict[str, Any] = {"limit": limit, "commitment": commitment}
        if before is not None:
            config["before"] = before
        if until is not None:
            config["until"] = until
        text = await self._call("getSignaturesForAddress", [address, config])
        parsed = _parse(GetSignaturesForAddressResp, text, "getSignaturesForAddress")
        return list(parsed.value)

    async def transaction(self, signature: str) -> EncodedConfirmedTransactionWithStatusMeta | None:
        """The finalized transaction with this signature (jsonParsed), or None if not finalized."""
        text = await self._call("getTransaction", [signature, GET_TRANSACTION_CONFIG])
        return _parse(GetTransactionResp, text, "getTransaction").value

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, params: list[Any]) -> str:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            async with self._session.post(self._url, json=body) as response:
                status, text = response.status, await response.text()
        except TimeoutError as exc:
            raise SolanaRpcFailed(f"{method}: the Solana RPC timed out") from exc
        except aiohttp.ClientError as exc:
            # str(exc) can name the host and port; the class says enough and leaks nothing.
            raise SolanaRpcFailed(
                f"{method}: cannot reach the Solana RPC ({type(exc).__name__})"
            ) from exc
        if status != 200:
            raise SolanaRpcFailed(f"{method}: the Solana RPC answered HTTP {status}")
        return text


def _parse(kind: type[Answer], text: str, method: str) -> Answer:
    """A typed ``result`` from the response text, or SolanaRpcFailed naming what went wrong."""
    try:
        parsed = kind.from_json(text)
    except Exception as exc:  # solders raises its own SerdeJSONError for every shape mismatch
        problem = _error_text(text) or "an answer of an unexpected shape"
        raise SolanaRpcFailed(f"{method}: {problem}") from exc
    if not isinstance(parsed, kind):  # a JSON-RPC error object, typed by solders
        raise SolanaRpcFailed(f"{method}: {_error_text(text) or type(parsed).__name__}")
    return parsed


def _error_text(text: str) -> str | None:
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    return f"RPC error {error.get('code')}: {str(error.get('message'))[:160]}"
