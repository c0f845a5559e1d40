"""The Sign-In With Solana message, as pure functions: the wallet standard's exact text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.pubkey import Pubkey
from support.wallets import Wallet

from coordinator.accounts.siws import (
    SignInInput,
    SignInPolicy,
    check_sign_in,
    iso_timestamp,
    message_text,
    new_nonce,
    parse_message,
    public_key_bytes,
    sign_in_input,
    verify_signature,
)
from coordinator.errors import AuthenticationFailed

ADDRESS = "FYJne45EEGPTEvMoRZ6sfY61ERfaCZuhpaH4cP8rGoA3"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = SignInPolicy(
    domain="koretex.example", uri="https://koretex.example", chain_id="solana:mainnet",
    statement="Sign in to Koretex.", nonce_ttl=timedelta(minutes=5),
    clock_skew=timedelta(minutes=1),
)


def test_the_text_is_the_wallet_standards_field_for_field() -> None:
    fields = sign_in_input(ADDRESS, "abc12345", NOW, POLICY)
    assert message_text(fields) == (
        "koretex.example wants you to sign in with your Solana account:\n"
        f"{ADDRESS}\n"
        "\n"
        "Sign in to Koretex.\n"
        "\n"
        "URI: https://koretex.example\n"
        "Version: 1\n"
        "Chain ID: solana:mainnet\n"
        "Nonce: abc12345\n"
        "Issued At: 2026-03-01T12:00:00.000Z\n"
        "Expiration Time: 2026-03-01T12:05:00.000Z"
    )
    assert fields.model_dump(by_alias=True, exclude_none=True) == {
        "domain": "koretex.example", "address": ADDRESS, "statement": "Sign in to Koretex.",
        "uri": "https://koretex.example", "version": "1", "chainId": "solana:mainnet",
        "nonce": "abc12345", "issuedAt": "2026-03-01T12:00:00.000Z",
        "expirationTime": "2026-03-01T12:05:00.000Z",
    }


def test_optional_parts_are_left_out_not_left_empty() -> None:
    bare = SignInInput(domain="d.example", address=ADDRESS)
    assert message_text(bare) == (
        f"d.example wants you to sign in with your Solana account:\n{ADDRESS}"
    )
    no_statement = SignInInput(domain="d.example", address=ADDRESS, nonce="n1234567",
                               resources=("https://a.example/1", "ipfs://x"))
    assert message_text(no_statement).endswith(
        f"{ADDRESS}\n\nNonce: n1234567\nResources:\n- https://a.example/1\n- ipfs://x"
    )
    assert parse_message(message_text(no_statement)) == no_statement


lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
    min_size=1, max_size=30,
).filter(lambda s: ": " not in s and not s.startswith("- ") and s != "Resources:")
optional = st.one_of(st.none(), lines)


@given(
    statement=optional, uri=optional, version=optional, chain_id=optional, nonce=optional,
    issued_at=optional, expiration_time=optional, not_before=optional, request_id=optional,
    resources=st.one_of(st.none(), st.lists(lines, min_size=1, max_size=3).map(tuple)),
)
def test_every_message_parses_back_to_its_fields(**parts: object) -> None:
    fields = SignInInput(domain="koretex.example", address=ADDRESS, **parts)  # type: ignore[arg-type]
    assert parse_message(message_text(fields)) == fields


@pytest.mark.parametrize("mangle", [
    lambda t: t + "\n",  # trailing newline
    lambda t: t.replace("Version: 1\n", "").replace("URI", "Version: 1\nURI"),  # reordered
    lambda t: t.replace("Nonce: ", "Nonce:"),  # no space after the label
    lambda t: t.replace("Nonce: ", "Nonce: abc\nNonce: "),  # repeated field
    lambda t: t.replace("Chain ID", "Chain Id"),  # unknown field
    lambda t: t.replace("Sign in to Koretex.", "Sign in\nto Koretex."),  # two-line statement
    lambda t: t.replace(" wants you", " asks you"),
    lambda t: t.replace("\n\nURI", "\nURI"),
])
def test_anything_but_the_canonical_text_is_refused(mangle: object) -> None:
    text = message_text(sign_in_input(ADDRESS, "abc12345", NOW, POLICY))
    with pytest.raises(AuthenticationFailed):
        parse_message(mangle(text))  # type: ignore[operator]


def test_addresses_must_be_on_curve_32_byte_keys() -> None:
    assert public_key_bytes(ADDRESS) is not None
    assert public_key_bytes(Wallet.nacl().address) is not None
    assert public_key_bytes("not base58 0OIl") is None
    assert public_key_bytes("1" * 32) is None  # 32 zero bytes: a small-order point
    program = Pubkey.from_string("11111111111111111111111111111111")
    derived, _ = Pubkey.find_program_address([b"koretex"], program)
    assert public_key_bytes(str(derived)) is None  # off the curve: no key can sign for it
    assert public_key_bytes(ADDRESS[:-2]) is None


def test_signatures_are_checked_over_the_exact_bytes() -> None:
    wallet, other = Wallet.solders(), Wallet.nacl()
    text = message_text(sign_in_input(wallet.address, new_nonce(), NOW, POLICY))
    verify_signature(text, wallet.sign(text.encode()), wallet.address)
    for text_signed, signer in ((text + " ", wallet), (text, other)):
        with pytest.raises(AuthenticationFailed, match="signature does not match"):
            verify_signature(text, signer.sign(text_signed.encode()), wallet.address)
    with pytest.raises(AuthenticationFailed, match="64-byte"):
        verify_signature(text, "abc", wallet.address)


def test_policy_checks_domain_uri_chain_and_time() -> None:
    fields = sign_in_input(ADDRESS, "abc12345", NOW, POLICY)
    assert check_sign_in(fields, ADDRESS, POLICY, NOW) == "abc12345"
    refusals = {
        "domain": fields.model_copy(update={"domain": "evil.example"}),
        "URI": fields.model_copy(update={"uri": "https://evil.example"}),
        "Chain ID": fields.model_copy(update={"chain_id": "solana:devnet"}),
        "Version": fields.model_copy(update={"version": "2"}),
        "no Nonce": fields.model_copy(update={"nonce": None}),
        "no Issued At": fields.model_copy(update={"issued_at": None}),
        "future": fields.model_copy(update={"issued_at": iso_timestamp(NOW + timedelta(hours=1))}),
        "ISO 8601": fields.model_copy(update={"expiration_time": "tomorrow"}),
        "Not Before": fields.model_copy(
            update={"not_before": iso_timestamp(NOW + timedelta(hours=1))}
        ),
    }
    for reason, variant in refusals.items():
        with pytest.raises(AuthenticationFailed, match=reason):
            check_sign_in(variant, ADDRESS, POLICY, NOW)
    with pytest.raises(AuthenticationFailed, match="expired"):
        check_sign_in(fields, ADDRESS, POLICY, NOW + timedelta(minutes=5))
    with pytest.raises(AuthenticationFailed, match="address"):
        check_sign_in(fields, Wallet.nacl().address, POLICY, NOW)
    # a wallet clock a little ahead is fine
    early = fields.model_copy(update={"issued_at": iso_timestamp(NOW + timedelta(seconds=30))})
    check_sign_in(early, ADDRESS, POLICY, NOW)
