"""Wallets that sign in the way real ones do: solders (Solana's own keypair) and plain PyNaCl."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import base58
import httpx
import nacl.signing
from solders.keypair import Keypair


@dataclass(frozen=True)
class Wallet:
    address: str
    sign: Callable[[bytes], str]  # message bytes -> base58 signature

    @classmethod
    def solders(cls) -> Wallet:
        keypair = Keypair()
        return cls(str(keypair.pubkey()), lambda message: str(keypair.sign_message(message)))

    @classmethod
    def nacl(cls) -> Wallet:
        key = nacl.signing.SigningKey.generate()
        return cls(
            base58.b58encode(bytes(key.verify_key)).decode(),
            lambda message: base58.b58encode(key.sign(message).signature).decode(),
        )


async def ask_nonce(http: httpx.AsyncClient, wallet: Wallet) -> dict[str, Any]:
    response = await http.post("/v1/auth/siws/nonce", json={"address": wallet.address})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def signed(wallet: Wallet, message: str, signer: Wallet | None = None) -> dict[str, str]:
    """The verify body for ``message``, signed by ``signer`` (the wallet itself by default)."""
    signature = (signer or wallet).sign(message.encode())
    return {"message": message, "signature": signature, "public_key": wallet.address}


async def sign_in(http: httpx.AsyncClient, wallet: Wallet) -> dict[str, Any]:
    """Nonce, sign, verify: the signed-in reply (token, expires_at, account)."""
    issued = await ask_nonce(http, wallet)
    response = await http.post("/v1/auth/siws/verify", json=signed(wallet, issued["message"]))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
