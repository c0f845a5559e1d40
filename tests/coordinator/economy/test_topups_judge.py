"""Judging top-up payments (pure): transactions executed on LiteSVM, rendered exactly as a mainnet
RPC answers getTransaction (jsonParsed) and parsed with solders, as the watcher receives them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.responses import GetTransactionResp
from support.solana_chain import USDC, USDC_MINT, ExecutedPayment, UsdcChain

from coordinator.economy.topups import (
    NotFinal,
    Paid,
    PaymentTerms,
    Rejected,
    Verdict,
    credits_for,
    credits_for_payment,
    judge_payment,
    next_step,
    payment_url,
    usdc_amount_raw,
    usdc_text,
)
from coordinator.errors import InvalidRequest

TREASURY = Keypair().pubkey()
INVOICE = 5 * USDC


@pytest.fixture(scope="module")
def chain() -> UsdcChain:
    return UsdcChain()


def terms(reference: Pubkey, amount_raw: int = INVOICE) -> PaymentTerms:
    return PaymentTerms(str(reference), amount_raw, str(TREASURY), str(USDC_MINT))


def parsed(result: dict[str, Any]) -> Any:
    """The typed value the RPC client hands the judge (it parses the same way)."""
    response = GetTransactionResp.from_json(json.dumps({"jsonrpc": "2.0", "result": result,
                                                         "id": 1}))
    assert isinstance(response, GetTransactionResp)
    return response.value


def judged(payment: ExecutedPayment, reference: Pubkey, amount_raw: int = INVOICE) -> Verdict:
    return judge_payment(terms(reference, amount_raw), payment.signature, parsed(payment.result))


@pytest.mark.parametrize("version", ["legacy", 0])
def test_an_exact_payment_is_paid(chain: UsdcChain, version: Any) -> None:
    reference = Keypair().pubkey()
    payment = chain.pay(chain.wallet(), TREASURY, INVOICE, [reference], version=version)
    assert judged(payment, reference) == Paid(payment.signature, INVOICE)


def test_a_v0_payment_with_accounts_from_a_lookup_table_is_paid(chain: UsdcChain) -> None:
    reference = Keypair().pubkey()
    payment = chain.pay(chain.wallet(), TREASURY, INVOICE, [reference], version=0, lookup=True)
    keys = payment.result["transaction"]["message"]["accountKeys"]
    assert {"pubkey": str(USDC_MINT), "writable": False, "signer": False,
            "source": "lookupTable"} in keys
    assert judged(payment, reference) == Paid(payment.signature, INVOICE)


def test_an_overpayment_is_paid_in_full_and_credited_at_the_quoted_rate(chain: UsdcChain) -> None:
    reference = Keypair().pubkey()
    payment = chain.pay(chain.wallet(), TREASURY, 7_500_000, [reference])
    verdict = judged(payment, reference)
    assert verdict == Paid(payment.signature, 7_500_000)
    quoted = credits_for(INVOICE, 1_000_000)
    assert credits_for_payment(quoted, INVOICE, 7_500_000) == 7_500_000
    assert credits_for_payment(quoted, INVOICE, INVOICE) == quoted


def test_an_underpayment_is_rejected(chain: UsdcChain) -> None:
    reference = Keypair().pubkey()
    payment = chain.pay(chain.wallet(), TREASURY, INVOICE - 1, [reference])
    verdict = judged(payment, reference)
    assert isinstance(verdict, Rejected)
    assert verdict.reason == "underpaid: the treasury received 4.999999 of 5 USDC"


def test_another_token_is_rejected_as_the_wrong_mint(chain: UsdcChain) -> None:
    lookalike = chain.create_mint()  # 6 decimals, same amounts, not USDC
    reference = Keypair().pubkey()
    payer = chain.wallet(mint=lookalike)
    payment = chain.pay(payer, TREASURY, INVOICE, [reference], mint=lookalike)
    assert payment.token_balances("post")[(str(TREASURY), str(lookalike))] == INVOICE
    verdict = judged(payment, reference)
    assert isinstance(verdict, Rejected)
    assert verdict.reason.startswith(f"wrong token: the treasury received mint {lookalike}")


def test_usdc_paid_to_someone_else_is_rejected_as_the_wrong_recipient(chain: UsdcChain) -> None:
    stranger = Keypair().pubkey()
    reference = Keypair().pubkey()
    payment = chain.pay(chain.wallet(), stranger, INVOICE, [reference])
    verdict = judged(payment, reference)
    assert isinstance(verdict, Rejected)
    assert verdict.reason == f"wrong recipient: the USDC went to {stranger}, not the treasury"


def test_a_failed_transaction_is_rejected(chain: UsdcChain) -> None:
    reference = Keypair().pubkey()
    payer = chain.wallet(usdc=INVOICE - 1)  # the token program refuses: insufficient funds
    payment = chain.pay(payer, TREASURY, INVOICE, [reference])
    assert not payment.succeeded
    assert payment.result["meta"]["err"] == {"InstructionError": [0, {"Custom": 1}]}
    verdict = judged(payment, reference)
    assert isinstance(verdict, Rejected)
    assert verdict.reason.startswith("the transaction failed on chain")


def test_a_transaction_without_the_invoice_reference_is_rejected(chain: UsdcChain) -> None:
    payment = chain.pay(chain.wallet(), TREASURY, INVOICE, [Keypair().pubkey()])
    verdict = judged(payment, Keypair().pubkey())
    assert isinstance(verdict, Rejected)
    assert "reference" in verdict.reason


def test_one_transaction_may_pay_with_several_references(chain: UsdcChain) -> None:
    first, second = Keypair().pubkey(), Keypair().pubkey()
    payment = chain.pay(chain.wallet(), TREASURY, INVOICE, [first, second])
    assert judged(payment, first) == judged(payment, second) == Paid(payment.signature, INVOICE)


def test_not_finalized_is_not_final() -> None:
    verdict = judge_payment(terms(Keypair().pubkey()), "sig", None)
    assert isinstance(verdict, NotFinal)


def test_an_answer_for_another_signature_is_rejected(chain: UsdcChain) -> None:
    reference = Keypair().pubkey()
    payment = chain.pay(chain.wallet(), TREASURY, INVOICE, [reference])
    verdict = judge_payment(terms(reference), "5" * 88, parsed(payment.result))
    assert isinstance(verdict, Rejected)


def test_only_the_integer_amounts_count_never_ui_amount(chain: UsdcChain) -> None:
    reference = Keypair().pubkey()
    payment = chain.pay(chain.wallet(), TREASURY, INVOICE - 1, [reference])
    doctored = copy.deepcopy(payment.result)
    for balance in doctored["meta"]["postTokenBalances"]:
        balance["uiTokenAmount"]["uiAmount"] = 1e9
        balance["uiTokenAmount"]["uiAmountString"] = "1000000000"
    verdict = judge_payment(terms(reference), payment.signature, parsed(doctored))
    assert isinstance(verdict, Rejected) and verdict.reason.startswith("underpaid")


def test_a_treasury_token_account_created_by_the_payment_started_at_zero(
    chain: UsdcChain,
) -> None:
    # When the payer's wallet creates the treasury's token account in the same transaction,
    # the RPC lists it in postTokenBalances only.
    treasury = Keypair().pubkey()
    reference = Keypair().pubkey()
    payment = chain.pay(chain.wallet(), treasury, INVOICE, [reference])
    created = copy.deepcopy(payment.result)
    created["meta"]["preTokenBalances"] = [
        b for b in created["meta"]["preTokenBalances"] if b["owner"] != str(treasury)
    ]
    own = PaymentTerms(str(reference), INVOICE, str(treasury), str(USDC_MINT))
    assert judge_payment(own, payment.signature, parsed(created)) == Paid(payment.signature,
                                                                          INVOICE)


# --- invoices: amounts, URLs and the watcher's next step ------------------------------------------


@given(st.integers(min_value=1, max_value=10**15))
def test_usdc_text_round_trips(raw: int) -> None:
    text = usdc_text(raw)
    assert "e" not in text.lower() and not text.endswith(".")
    assert usdc_amount_raw(text, Decimal("0.000001"), Decimal(10**10)) == raw


@pytest.mark.parametrize(("value", "raw"), [
    ("5", 5_000_000), ("5.25", 5_250_000), (" 0.01 ", 10_000), (7, 7_000_000),
    (Decimal("0.1"), 100_000), ("1e2", 100_000_000),
])
def test_amounts_accepted(value: object, raw: int) -> None:
    assert usdc_amount_raw(value, Decimal("0.01"), Decimal(10_000)) == raw


@pytest.mark.parametrize("value", [
    "abc", "", "-1", "0", "0.001", "10000.01", "1.0000001", True, None, [5], 5.0, "NaN",
    "Infinity", Decimal("sNaN"),
])
def test_amounts_refused(value: object) -> None:
    with pytest.raises(InvalidRequest) as refused:
        usdc_amount_raw(value, Decimal("0.01"), Decimal(10_000))
    assert refused.value.param == "amount_usdc"


def test_the_payment_url_follows_the_solana_pay_transfer_request_spec() -> None:
    reference = str(Keypair().pubkey())
    url = payment_url(str(TREASURY), 5_250_000, str(USDC_MINT), reference, "Koretex credits top-up")
    parts = urlsplit(url)
    assert parts.scheme == "solana" and parts.path == str(TREASURY)
    assert parse_qs(parts.query) == {
        "amount": ["5.25"], "spl-token": [str(USDC_MINT)], "reference": [reference],
        "label": ["Koretex"], "message": ["Koretex credits top-up"],
    }
    assert "message=Koretex%20credits%20top-up" in url


NOW = datetime(2025, 6, 1, tzinfo=UTC)
GRACE = timedelta(minutes=5)


def test_next_step_credits_the_first_good_payment() -> None:
    verdicts: list[Verdict] = [Rejected("a", "underpaid"), Paid("b", 5), Paid("c", 6)]
    step = next_step(verdicts, NOW, NOW + timedelta(minutes=1), GRACE)
    assert step.credit == (Paid("b", 5), Paid("c", 6)) and not step.expire


def test_next_step_expires_only_after_the_grace_period() -> None:
    expires_at = NOW - timedelta(minutes=1)
    assert not next_step([], NOW, expires_at, GRACE).expire
    assert next_step([], NOW + GRACE, expires_at, GRACE).expire


def test_next_step_never_expires_a_payment_waiting_for_finality() -> None:
    step = next_step([NotFinal("a", "waiting")], NOW + timedelta(days=1), NOW, GRACE)
    assert not step.expire and step.note == "waiting"


def test_next_step_explains_a_rejection() -> None:
    step = next_step([Rejected("a", "underpaid: 1 of 5")], NOW, NOW, GRACE)
    assert step.note == "underpaid: 1 of 5 (transaction a)" and not step.credit
