"""Node authentication: the canonical challenge text, and signing and verifying it.

Keys and signatures are base58, as Solana wallets show them, so a node key reads like an address.
"""

from __future__ import annotations

import base58
import nacl.exceptions
import nacl.signing

from protocol.ids import NodeId


def challenge_text(*, domain: str, nonce: str, node_id: NodeId, issued_at: str) -> str:
    """The exact text a node signs to prove it holds the key for ``node_id``."""
    return (
        "Koretex node authentication\n"
        f"Domain: {domain}\n"
        f"Node: {node_id}\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {issued_at}"
    )


def node_id_of(signing_key: nacl.signing.SigningKey) -> NodeId:
    return NodeId(base58.b58encode(bytes(signing_key.verify_key)).decode())


def sign_text(signing_key: nacl.signing.SigningKey, text: str) -> str:
    """A detached ed25519 signature over the UTF-8 bytes of ``text``, base58-encoded."""
    return base58.b58encode(signing_key.sign(text.encode()).signature).decode()


def verify_text(public_key_b58: str, text: str, signature_b58: str) -> bool:
    """Whether ``signature_b58`` is a valid signature of ``text`` by ``public_key_b58``."""
    try:
        verify_key = nacl.signing.VerifyKey(base58.b58decode(public_key_b58))
        verify_key.verify(text.encode(), base58.b58decode(signature_b58))
    except (ValueError, TypeError, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True
