"""The payments the top-up tests model are real: LiteSVM runs the SPL token program's
transferChecked, Solana Pay style (the reference as a trailing read-only, non-signer account),
and the token balances our getTransaction fixtures claim are the ones the chain now holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.token import ID as TOKEN_PROGRAM
from solders.token.associated import get_associated_token_address
from support.solana_chain import USDC, USDC_MINT, UsdcChain, validate_get_transaction

TOKEN_PROGRAM_ID = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"


def test_the_token_program_is_the_real_one() -> None:
    assert str(TOKEN_PROGRAM) == TOKEN_PROGRAM_ID


@pytest.mark.parametrize(("version", "lookup"), [("legacy", False), (0, False), (0, True)])
def test_a_solana_pay_transfer_moves_usdc_as_the_fixture_claims(version: Any, lookup: bool) -> None:
    chain = UsdcChain()
    payer, treasury, reference = chain.wallet(100 * USDC), Keypair().pubkey(), Keypair().pubkey()
    chain.fund(treasury, 3 * USDC)

    payment = chain.pay(payer, treasury, 5 * USDC, [reference], version=version, lookup=lookup)

    assert payment.succeeded
    # What the chain holds now, read straight from the token accounts...
    assert chain.token_amount(payer.pubkey()) == 95 * USDC
    assert chain.token_amount(treasury) == 8 * USDC
    # ...is what the fixture's pre/postTokenBalances say.
    usdc = str(USDC_MINT)
    assert payment.token_balances("pre") == {
        (str(payer.pubkey()), usdc): 100 * USDC, (str(treasury), usdc): 3 * USDC,
    }
    assert payment.token_balances("post") == {
        (str(payer.pubkey()), usdc): 95 * USDC, (str(treasury), usdc): 8 * USDC,
    }
    result = payment.result
    keys = result["transaction"]["message"]["accountKeys"]
    by_index = {b["accountIndex"]: b for b in result["meta"]["postTokenBalances"]}
    treasury_account = str(get_associated_token_address(treasury, USDC_MINT))
    assert keys[next(i for i, b in by_index.items() if b["owner"] == str(treasury))]["pubkey"] \
        == treasury_account
    # The reference rides along as Solana Pay puts it: read-only, not a signer.
    assert {"pubkey": str(reference), "writable": False, "signer": False,
            "source": "transaction"} in keys
    instruction = result["transaction"]["message"]["instructions"][0]
    assert instruction["parsed"]["type"] == "transferChecked"
    assert instruction["parsed"]["info"]["signers"] == [str(reference)]
    assert instruction["parsed"]["info"]["destination"] == treasury_account
    assert result["version"] == version
    assert result["meta"]["fee"] == result["meta"]["preBalances"][0] - \
        result["meta"]["postBalances"][0] == 5000


def test_a_failed_transfer_moves_nothing_but_the_fee() -> None:
    chain = UsdcChain()
    payer, treasury, reference = chain.wallet(USDC), Keypair().pubkey(), Keypair().pubkey()
    payment = chain.pay(payer, treasury, 5 * USDC, [reference])
    assert not payment.succeeded
    assert chain.token_amount(payer.pubkey()) == USDC
    assert chain.token_amount(treasury) == 0
    assert payment.token_balances("pre") == payment.token_balances("post")
    assert payment.result["meta"]["status"] == {"Err": payment.result["meta"]["err"]}
    assert any("insufficient funds" in line for line in payment.result["meta"]["logMessages"])


def test_fixtures_are_exactly_the_shape_solders_parses() -> None:
    chain = UsdcChain()
    payment = chain.pay(chain.wallet(), Keypair().pubkey(), USDC, [Keypair().pubkey()])
    response = payment.response()
    parsed = validate_get_transaction(response)
    assert parsed.value is not None
    assert json.loads(parsed.value.to_json()) == response["result"]
    # A field solders does not know would not survive the round trip: the check has teeth.
    response["result"]["meta"]["preTokenBalance"] = []
    with pytest.raises(AssertionError):
        validate_get_transaction(response)
