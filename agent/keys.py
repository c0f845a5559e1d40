"""The node's ed25519 identity: kept in the OS keyring, or in an owner-only file without one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import base58
import nacl.signing

from agent.errors import ConfigurationError

KEYRING_SERVICE = "koretex"
KEYRING_USER = "node-signing-key"

Where = Literal["keyring", "file"]


@dataclass(frozen=True, slots=True)
class NodeKey:
    signing_key: nacl.signing.SigningKey
    stored_in: Where
    location: str

    @property
    def node_id(self) -> str:
        return base58.b58encode(bytes(self.signing_key.verify_key)).decode()


def load_or_create(store: Literal["auto", "keyring", "file"], key_file: Path) -> NodeKey:
    """The node's key, created on first use, from the keyring if one works, else a file."""
    if store == "auto" and key_file.exists():
        # A key already in the file stays the node's identity even if a keyring appears later.
        return _from_file(key_file)
    if store in ("auto", "keyring"):
        key = _from_keyring()
        if key is not None:
            return key
        if store == "keyring":
            raise ConfigurationError("no working OS keyring on this machine; use --key-store file")
    return _from_file(key_file)


def _keyring_usable() -> bool:
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    return not isinstance(backend, fail.Keyring) and backend.priority > 0


def _from_keyring() -> NodeKey | None:
    if not _keyring_usable():
        return None
    import keyring
    import keyring.errors

    try:
        stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        if stored is None:
            signing_key = nacl.signing.SigningKey.generate()
            keyring.set_password(
                KEYRING_SERVICE, KEYRING_USER, base58.b58encode(bytes(signing_key)).decode()
            )
        else:
            signing_key = nacl.signing.SigningKey(base58.b58decode(stored))
    except keyring.errors.KeyringError:
        return None
    return NodeKey(signing_key, "keyring", f"{KEYRING_SERVICE}/{KEYRING_USER}")


def _from_file(path: Path) -> NodeKey:
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise ConfigurationError(f"{path} is readable by others; run: chmod 600 {path}")
        try:
            signing_key = nacl.signing.SigningKey(base58.b58decode(path.read_text().strip()))
        except ValueError as exc:
            raise ConfigurationError(f"{path} does not hold a node key") from exc
        return NodeKey(signing_key, "file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    signing_key = nacl.signing.SigningKey.generate()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(base58.b58encode(bytes(signing_key)).decode() + "\n")
    return NodeKey(signing_key, "file", str(path))


def forget(key_file: Path) -> str | None:
    """Delete the node key wherever it is kept (uninstalling); where it was, if anywhere."""
    places: list[str] = []
    if _keyring_usable():
        import keyring
        import keyring.errors

        try:
            keyring.delete_password(KEYRING_SERVICE, KEYRING_USER)
            places.append("the OS keyring")
        except keyring.errors.KeyringError:  # nothing stored there (or the keyring is locked)
            pass
    if key_file.exists():
        key_file.unlink()
        places.append(str(key_file))
    return ", ".join(places) or None
