"""The pure half of OpenID sign-in: ID-token checks, the sealed flow cookie, PKCE, redirects."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from coordinator.accounts.oidc import (
    Flow,
    authorization_url,
    new_flow,
    open_flow,
    pkce_challenge,
    safe_next,
    seal_flow,
    verify_id_token,
)
from coordinator.errors import AuthenticationFailed
from coordinator.settings.oidc import OidcSettings

ISSUER = "https://issuer.example"
CLIENT = "koretex"
NOW = 1_800_000_000
SETTINGS = OidcSettings(issuer=ISSUER, client_id=CLIENT, client_secret="s3cret")
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
PUBLIC = KeySet.import_key_set({"keys": [KEY.as_dict(private=False)]})


def id_token(key: RSAKey = KEY, **overrides: Any) -> str:
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "alice", "nonce": "n-1", "iat": NOW,
              "exp": NOW + 300, "email": "alice@example.com", **overrides}
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def test_a_good_id_token_names_the_identity_by_issuer_and_subject() -> None:
    identity = verify_id_token(id_token(), PUBLIC, ISSUER, CLIENT, "n-1", NOW)
    assert (identity.subject, identity.email) == (f"{ISSUER}#alice", "alice@example.com")


@pytest.mark.parametrize("bad", [
    {"iss": "https://evil.example"},
    {"aud": "someone-else"},
    {"nonce": "replayed"},
    {"nonce": None},
    {"exp": NOW - 3600},
    {"sub": None},
])
def test_id_tokens_failing_any_check_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationFailed):
        verify_id_token(id_token(**bad), PUBLIC, ISSUER, CLIENT, "n-1", NOW)


def test_an_id_token_signed_by_another_key_is_refused() -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(AuthenticationFailed):
        verify_id_token(id_token(other), PUBLIC, ISSUER, CLIENT, "n-1", NOW)


def test_the_flow_cookie_round_trips_and_refuses_tampering_and_age() -> None:
    flow = new_flow("/credits", True, NOW, 600)
    sealed = seal_flow(flow, SETTINGS)
    assert open_flow(sealed, SETTINGS, NOW + 10) == flow
    _, _, tag = sealed.partition(".")
    forged = Flow(**{**flow.__dict__, "next": "/elsewhere"})
    with pytest.raises(AuthenticationFailed):
        open_flow(seal_flow(forged, SETTINGS).partition(".")[0] + "." + tag, SETTINGS, NOW)
    with pytest.raises(AuthenticationFailed):
        open_flow(sealed, OidcSettings(issuer=ISSUER, client_id=CLIENT, client_secret="x"), NOW)
    with pytest.raises(AuthenticationFailed):
        open_flow(sealed, SETTINGS, NOW + 601)


def test_pkce_is_s256_and_the_authorization_url_carries_every_guard() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert pkce_challenge(verifier) == expected.decode()
    flow = new_flow(None, False, NOW, 600)
    url = authorization_url(f"{ISSUER}/authorize", SETTINGS, flow, "https://k.example/cb")
    for part in (f"state={flow.state}", f"nonce={flow.nonce}", "code_challenge_method=S256",
                 f"code_challenge={pkce_challenge(flow.verifier)}", "response_type=code"):
        assert part in url
    assert flow.verifier not in url


@pytest.mark.parametrize(("target", "expected"), [
    ("/credits", "/credits"), (None, "/dashboard"), ("https://evil.example", "/dashboard"),
    ("//evil.example", "/dashboard"), ("/\\evil.example", "/dashboard"),
])
def test_only_local_paths_are_followed_after_sign_in(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
