"""Sign-In With Solana: the wallet-standard ``solana:signIn`` message, built, parsed, checked.

Pure: no database, no clock (``now`` is passed in). The text is exactly what the wallet standard's
``createSignInMessageText`` writes (the CAIP-122 / EIP-4361 ABNF, "Solana account"), so a wallet
given :class:`SignInInput` signs the same bytes the coordinator built::

    ${domain} wants you to sign in with your Solana account:
    ${address}

    ${statement}

    URI: ${uri}
    Version: ${version}
    Chain ID: ${chain-id}
    Nonce: ${nonce}
    Issued At: ${issued-at}
    Expiration Time: ${expiration-time}
    Not Before: ${not-before}
    Request ID: ${request-id}
    Resources:
    - ${resources[0]}
    - ${resources[n]}

The statement block and every field line are optional; an absent one is left out, not left empty.
A message is accepted only in this canonical form: it must re-render to the very text signed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import base58
import nacl.bindings
import nacl.exceptions
import nacl.signing
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from coordinator.errors import AuthenticationFailed

HEADER_SUFFIX = " wants you to sign in with your Solana account:"
VERSION = "1"
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64

# The field lines in the order the standard writes them: (label, SignInInput attribute).
FIELD_LINES: tuple[tuple[str, str], ...] = (
    ("URI", "uri"),
    ("Version", "version"),
    ("Chain ID", "chain_id"),
    ("Nonce", "nonce"),
    ("Issued At", "issued_at"),
    ("Expiration Time", "expiration_time"),
    ("Not Before", "not_before"),
    ("Request ID", "request_id"),
)
RESOURCES = "Resources:"


class SignInInput(BaseModel):
    """The wallet standard's ``SolanaSignInInput`` (camelCase on the wire, as wallets take it)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    domain: str
    address: str
    statement: str | None = None
    uri: str | None = None
    version: str | None = None
    chain_id: str | None = None
    nonce: str | None = None
    issued_at: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class SignInPolicy:
    """What this coordinator accepts: its own domain, URI and chain, within a clock skew."""

    domain: str
    uri: str
    chain_id: str
    statement: str
    nonce_ttl: timedelta
    clock_skew: timedelta


def message_text(fields: SignInInput) -> str:
    """The exact text a wallet signs for ``fields`` (the standard's ``createSignInMessageText``)."""
    text = f"{fields.domain}{HEADER_SUFFIX}\n{fields.address}"
    if fields.statement:
        text += f"\n\n{fields.statement}"
    lines = [
        f"{label}: {getattr(fields, name)}"
        for label, name in FIELD_LINES
        if getattr(fields, name)
    ]
    if fields.resources:
        lines.append(RESOURCES)
        lines.extend(f"- {resource}" for resource in fields.resources)
    if lines:
        text += "\n\n" + "\n".join(lines)
    return text


def parse_message(text: str) -> SignInInput:
    """The fields of a signed sign-in message; raises AuthenticationFailed unless canonical."""
    fields = _parse_lines(text.split("\n"))
    if fields is None or message_text(fields) != text:
        raise AuthenticationFailed(
            "not a Sign-In With Solana message: sign the exact text the nonce endpoint returned"
        )
    return fields


def _parse_lines(lines: list[str]) -> SignInInput | None:
    if len(lines) < 2 or not lines[0].endswith(HEADER_SUFFIX):
        return None
    domain, address = lines[0][: -len(HEADER_SUFFIX)], lines[1]
    if not domain or not address:
        return None
    values: dict[str, str | tuple[str, ...] | None] = {"domain": domain, "address": address}
    rest = lines[2:]
    if not rest:
        return SignInInput.model_validate(values)
    if rest[0] != "" or len(rest) < 2:
        return None
    rest = rest[1:]
    if not _is_field_line(rest[0]):
        values["statement"] = rest[0]
        if len(rest) == 1:
            return SignInInput.model_validate(values)
        if rest[1] != "" or len(rest) < 3:
            return None
        rest = rest[2:]
    position = 0
    for index, line in enumerate(rest):
        if line == RESOURCES:
            items = rest[index + 1:]
            if not items or not all(item.startswith("- ") for item in items):
                return None
            values["resources"] = tuple(item[2:] for item in items)
            break
        label, separator, value = line.partition(": ")
        names = [name for known, name in FIELD_LINES[position:] if known == label]
        if not separator or not value or not names:
            return None  # unknown, repeated or out-of-order field
        values[names[0]] = value
        position = [name for _, name in FIELD_LINES].index(names[0]) + 1
    return SignInInput.model_validate(values)


def _is_field_line(line: str) -> bool:
    return line == RESOURCES or any(line.startswith(f"{label}: ") for label, _ in FIELD_LINES)


def public_key_bytes(address: str) -> bytes | None:
    """The 32-byte ed25519 key a base58 address names, or None if it cannot sign.

    Off-curve addresses (program-derived accounts) and small-order points have no private key,
    so a wallet could never sign in with them.
    """
    try:
        raw = base58.b58decode(address.encode("ascii"))
    except ValueError:
        return None
    if len(raw) != PUBLIC_KEY_BYTES or base58.b58encode(raw).decode() != address:
        return None
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        return None
    return raw


def verify_signature(text: str, signature_b58: str, public_key_b58: str) -> None:
    """Check an ed25519 signature over the UTF-8 bytes of ``text``; raises AuthenticationFailed."""
    key = public_key_bytes(public_key_b58)
    if key is None:
        raise AuthenticationFailed("public_key is not a base58 ed25519 wallet address")
    try:
        signature = base58.b58decode(signature_b58.encode("ascii"))
    except ValueError:
        signature = b""
    if len(signature) != SIGNATURE_BYTES:
        raise AuthenticationFailed("signature is not a base58 64-byte ed25519 signature")
    try:
        nacl.signing.VerifyKey(key).verify(text.encode(), signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise AuthenticationFailed(
            "signature does not match the message and public key"
        ) from exc


def new_nonce() -> str:
    """A single-use nonce: 128 random bits, alphanumeric as EIP-4361 asks."""
    return base58.b58encode(secrets.token_bytes(16)).decode()


def sign_in_input(address: str, nonce: str, now: datetime, policy: SignInPolicy) -> SignInInput:
    """The input a wallet is asked to sign for ``address``, valid for the nonce's lifetime."""
    return SignInInput(
        domain=policy.domain, address=address, statement=policy.statement or None,
        uri=policy.uri, version=VERSION, chain_id=policy.chain_id, nonce=nonce,
        issued_at=iso_timestamp(now), expiration_time=iso_timestamp(now + policy.nonce_ttl),
    )


def check_sign_in(
    fields: SignInInput, public_key_b58: str, policy: SignInPolicy, now: datetime
) -> str:
    """Check a parsed, signature-verified message against this coordinator; returns its nonce.

    The domain is the configured one, never the request's Host: a page on another domain must
    not be able to reuse a signature its visitor gave it.
    """
    if fields.address != public_key_b58:
        raise AuthenticationFailed("the message's address is not the public_key that signed it")
    if fields.domain != policy.domain:
        raise AuthenticationFailed(
            f"the message is for domain {fields.domain!r}; this service is {policy.domain!r}"
        )
    if fields.uri != policy.uri:
        raise AuthenticationFailed(f"the message's URI must be {policy.uri!r}")
    if fields.version != VERSION:
        raise AuthenticationFailed(f"the message's Version must be {VERSION!r}")
    if fields.chain_id != policy.chain_id:
        raise AuthenticationFailed(f"the message's Chain ID must be {policy.chain_id!r}")
    if not fields.nonce:
        raise AuthenticationFailed("the message has no Nonce: ask the nonce endpoint for one")
    issued_at = _timestamp(fields.issued_at, "Issued At")
    if issued_at is None:
        raise AuthenticationFailed("the message has no Issued At time")
    if issued_at > now + policy.clock_skew:
        raise AuthenticationFailed("the message's Issued At time is in the future")
    expires_at = _timestamp(fields.expiration_time, "Expiration Time")
    if expires_at is not None and expires_at <= now:
        raise AuthenticationFailed("the sign-in message has expired: ask for a new nonce")
    not_before = _timestamp(fields.not_before, "Not Before")
    if not_before is not None and not_before > now + policy.clock_skew:
        raise AuthenticationFailed("the sign-in message is not valid yet (Not Before)")
    return fields.nonce


def to_milliseconds(moment: datetime) -> datetime:
    """``moment`` as precise as the message can say it, so stored and signed times agree."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as JavaScript's ``toISOString`` writes."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(value: str | None, label: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise AuthenticationFailed(f"the message's {label} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise AuthenticationFailed(f"the message's {label} has no time zone")
    return moment
