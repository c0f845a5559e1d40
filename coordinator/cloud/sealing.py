"""Upstream tokens at rest: sealed with a ``SecretBox`` under the coordinator's master key.

A sealed token is ``nonce || ciphertext`` (pynacl's combined form); it is opened only in memory,
at the moment a request to the upstream is built, and never logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib

import nacl.exceptions
import nacl.secret
import nacl.utils


class MasterKeyInvalid(Exception):
    """The master key setting is not 32 bytes of base64 or hex."""


class SealBroken(Exception):
    """A sealed token does not open under this master key (wrong key or damaged data)."""


def parse_master_key(text: str) -> bytes:
    """The 32 key bytes of a master key written as 64 hex digits or base64 (either alphabet)."""
    text = text.strip()
    candidates: list[bytes] = []
    if len(text) == 2 * nacl.secret.SecretBox.KEY_SIZE:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(text + "=" * (-len(text) % 4)))
    for key in candidates:
        if len(key) == nacl.secret.SecretBox.KEY_SIZE:
            return key
    raise MasterKeyInvalid(
        "the cloud master key must be 32 random bytes written as 64 hex digits or base64"
        " (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
    )


def new_master_key() -> str:
    """A fresh master key, as 64 hex digits."""
    return nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE).hex()


class TokenSealer:
    """Seals and opens upstream tokens under one master key."""

    def __init__(self, key: bytes) -> None:
        self._box = nacl.secret.SecretBox(key)

    @classmethod
    def from_setting(cls, text: str) -> TokenSealer:
        return cls(parse_master_key(text))

    def seal(self, token: str) -> bytes:
        return bytes(self._box.encrypt(token.encode()))

    def open(self, sealed: bytes) -> str:
        try:
            return self._box.decrypt(sealed).decode()
        except (nacl.exceptions.CryptoError, UnicodeDecodeError):
            raise SealBroken(
                "a stored upstream token does not open under this master key"
            ) from None


def last_four(token: str) -> str:
    """What the API shows of a token: its last four characters, nothing more."""
    return token[-4:]
