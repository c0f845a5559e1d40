"""A local Solana (LiteSVM) where USDC is paid the way Solana Pay wallets pay, and where every
executed transaction is rendered exactly as a mainnet RPC node answers ``getTransaction`` with
``encoding: jsonParsed, maxSupportedTransactionVersion: 0``.

The rendering is derived from what LiteSVM executed (signature, account keys, header, lookup
tables, lamports and token accounts read before and after, fee, logs, compute units, error), so a
fixture cannot claim a transfer the token program did not make. Every rendering is proven against
solders' RPC types: it must parse as ``GetTransactionResp`` and serialize back to the same JSON,
so it has no field solders does not know and lacks none it requires.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from solders.account import Account
from solders.address_lookup_table_account import ID as LOOKUP_TABLE_PROGRAM
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.clock import Clock
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import GetTransactionResp
from solders.token import ID as TOKEN_PROGRAM
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount, TokenAccountState
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import UiTransactionStatusMeta

from coordinator.settings.economy import MAINNET_USDC_MINT

USDC_MINT = Pubkey.from_string(MAINNET_USDC_MINT)
USDC = 1_000_000  # base units in one USDC
MINT_SIZE = 82
TOKEN_ACCOUNT_SIZE = 165
TRANSFER_CHECKED = 12  # the SPL token instruction tag
SLOT = 330_000_000
BLOCK_TIME = 1_745_000_000  # a 2025 mainnet-era unix time

Version = Literal["legacy", 0]


@dataclass(frozen=True)
class ExecutedPayment:
    """One transaction LiteSVM executed, with its ``getTransaction`` (jsonParsed) result."""

    signature: str
    result: dict[str, Any]
    accounts: tuple[str, ...]  # every account key, static then loaded from lookup tables
    succeeded: bool

    def response(self, request_id: int | str = 1) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "result": self.result, "id": request_id}

    def signature_entry(self, confirmation: str) -> dict[str, Any]:
        """Its entry in a ``getSignaturesForAddress`` answer."""
        return {
            "signature": self.signature,
            "slot": self.result["slot"],
            "err": self.result["meta"]["err"],
            "memo": None,
            "blockTime": self.result["blockTime"],
            "confirmationStatus": confirmation,
        }

    def token_balances(self, when: Literal["pre", "post"]) -> dict[tuple[str, str], int]:
        """(owner, mint) -> raw amount, as the rendered result claims."""
        return {
            (b["owner"], b["mint"]): int(b["uiTokenAmount"]["amount"])
            for b in self.result["meta"][f"{when}TokenBalances"]
        }


class UsdcChain:
    """LiteSVM with the real USDC mint address, token accounts and one address lookup table."""

    def __init__(self) -> None:
        self.svm = LiteSVM()
        self.svm.set_clock(Clock(SLOT, BLOCK_TIME - 86_400, 760, 761, BLOCK_TIME))
        self.create_mint(USDC_MINT)
        self.lookup_table = Keypair().pubkey()
        self._write_lookup_table(self.lookup_table, [USDC_MINT, TOKEN_PROGRAM])

    # --- state ------------------------------------------------------------------------------------

    def create_mint(self, address: Pubkey | None = None, decimals: int = 6) -> Pubkey:
        mint = address or Keypair().pubkey()
        data = bytes(Mint(mint_authority=None, supply=10**15, decimals=decimals,
                          is_initialized=True, freeze_authority=None))
        self._set(mint, data, TOKEN_PROGRAM)
        return mint

    def fund(self, owner: Pubkey, amount: int, mint: Pubkey = USDC_MINT) -> Pubkey:
        """Give ``owner`` an associated token account of ``mint`` holding ``amount``."""
        address = get_associated_token_address(owner, mint)
        account = TokenAccount(mint=mint, owner=owner, amount=amount, delegate=None,
                               state=TokenAccountState.Initialized, is_native=None,
                               delegated_amount=0, close_authority=None)
        self._set(address, bytes(account), TOKEN_PROGRAM)
        return address

    def wallet(self, usdc: int = 100 * USDC, mint: Pubkey = USDC_MINT) -> Keypair:
        """A fresh wallet with SOL for fees and ``usdc`` base units of ``mint``."""
        keypair = Keypair()
        self.svm.airdrop(keypair.pubkey(), 1_000_000_000)
        self.fund(keypair.pubkey(), usdc, mint)
        return keypair

    def token_amount(self, owner: Pubkey, mint: Pubkey = USDC_MINT) -> int | None:
        account = self.svm.get_account(get_associated_token_address(owner, mint))
        if account is None:
            return None
        return TokenAccount.from_bytes(bytes(account.data)).amount

    # --- paying -----------------------------------------------------------------------------------

    def pay(
        self, payer: Keypair, recipient: Pubkey, amount: int, references: Sequence[Pubkey | str],
        *, mint: Pubkey = USDC_MINT, version: Version = 0, lookup: bool = False,
    ) -> ExecutedPayment:
        """A Solana Pay SPL transfer: ``transferChecked`` from the payer's token account to the
        recipient's, with each reference appended as a read-only, non-signer account."""
        if self.token_amount(recipient, mint) is None:
            self.fund(recipient, 0, mint)
        source = get_associated_token_address(payer.pubkey(), mint)
        destination = get_associated_token_address(recipient, mint)
        keys = [
            AccountMeta(source, is_signer=False, is_writable=True),
            AccountMeta(mint, is_signer=False, is_writable=False),
            AccountMeta(destination, is_signer=False, is_writable=True),
            AccountMeta(payer.pubkey(), is_signer=True, is_writable=False),
            *(AccountMeta(Pubkey.from_string(str(r)), is_signer=False, is_writable=False)
              for r in references),
        ]
        data = struct.pack("<BQB", TRANSFER_CHECKED, amount, self.decimals(mint))
        instruction = Instruction(TOKEN_PROGRAM, data, keys)
        blockhash = self.svm.latest_blockhash()
        transaction: Transaction | VersionedTransaction
        if version == "legacy":
            message: Message | MessageV0 = Message.new_with_blockhash(
                [instruction], payer.pubkey(), blockhash
            )
            transaction = Transaction([payer], message, blockhash)  # type: ignore[arg-type]
        else:
            tables = [AddressLookupTableAccount(self.lookup_table, [USDC_MINT, TOKEN_PROGRAM])]
            message = MessageV0.try_compile(payer.pubkey(), [instruction],
                                            tables if lookup else [], blockhash)
            transaction = VersionedTransaction(message, [payer])
        accounts = self._account_keys(message)
        before = {key: self.svm.get_account(key) for key in accounts}
        outcome = self.svm.send_transaction(transaction)
        after = {key: self.svm.get_account(key) for key in accounts}
        self.svm.expire_blockhash()
        signature = str(transaction.signatures[0])
        result = _render(signature, message, version, accounts, before, after, outcome, self)
        validate_get_transaction({"jsonrpc": "2.0", "result": result, "id": 1})
        return ExecutedPayment(signature, result, tuple(str(k) for k in accounts),
                               isinstance(outcome, TransactionMetadata))

    # --- internals --------------------------------------------------------------------------------

    def decimals(self, mint: Pubkey) -> int:
        account = self.svm.get_account(mint)
        assert account is not None, f"no mint {mint}"
        return Mint.from_bytes(bytes(account.data)).decimals

    def _set(self, address: Pubkey, data: bytes, owner: Pubkey) -> None:
        lamports = self.svm.minimum_balance_for_rent_exemption(len(data))
        self.svm.set_account(address, Account(lamports, data, owner))

    def _write_lookup_table(self, address: Pubkey, entries: list[Pubkey]) -> None:
        # The on-chain layout: ProgramState::LookupTable (u32 1), then LookupTableMeta
        # (deactivation_slot u64::MAX = active, last_extended_slot, start index, no authority,
        # padding) in 56 bytes, then the addresses.
        meta = struct.pack("<IQQBB", 1, 2**64 - 1, 0, 0, 0).ljust(56, b"\0")
        self._set(address, meta + b"".join(bytes(e) for e in entries), LOOKUP_TABLE_PROGRAM)

    def _account_keys(self, message: Message | MessageV0) -> list[Pubkey]:
        keys = list(message.account_keys)
        if isinstance(message, MessageV0):
            writable: list[Pubkey] = []
            readonly: list[Pubkey] = []
            for lookup in message.address_table_lookups:
                table = self._lookup_addresses(lookup.account_key)
                writable += [table[i] for i in lookup.writable_indexes]
                readonly += [table[i] for i in lookup.readonly_indexes]
            keys += writable + readonly
        return keys

    def _lookup_addresses(self, table: Pubkey) -> list[Pubkey]:
        account = self.svm.get_account(table)
        assert account is not None
        data = bytes(account.data)[56:]
        return [Pubkey.from_bytes(data[i:i + 32]) for i in range(0, len(data), 32)]


def validate_get_transaction(response: dict[str, Any]) -> GetTransactionResp:
    """Parse a getTransaction response with solders and check it serializes back unchanged."""
    parsed = GetTransactionResp.from_json(json.dumps(response))
    assert isinstance(parsed, GetTransactionResp), parsed
    if response["result"] is not None:
        assert parsed.value is not None
        assert json.loads(parsed.value.to_json()) == response["result"], "shape drifted"
    return parsed


# --- rendering as the RPC does --------------------------------------------------------------------


def _ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    whole, fraction = divmod(amount, 10**decimals)
    digits = f"{fraction:0{decimals}d}".rstrip("0") if decimals else ""
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": amount / 10**decimals if amount else None,
        "uiAmountString": f"{whole}.{digits}" if digits else str(whole),
    }


def _token_balances(
    accounts: list[Pubkey], state: dict[Pubkey, Account | None], chain: UsdcChain
) -> list[dict[str, Any]]:
    balances = []
    for index, key in enumerate(accounts):
        account = state[key]
        if account is None or account.owner != TOKEN_PROGRAM:
            continue
        if len(account.data) != TOKEN_ACCOUNT_SIZE:
            continue  # a mint, not a token account
        token = TokenAccount.from_bytes(bytes(account.data))
        balances.append({
            "accountIndex": index,
            "mint": str(token.mint),
            "owner": str(token.owner),
            "programId": str(TOKEN_PROGRAM),
            "uiTokenAmount": _ui_token_amount(token.amount, chain.decimals(token.mint)),
        })
    return balances


def _writable(message: Message | MessageV0, index: int, static_count: int) -> bool:
    header = message.header
    signed = header.num_required_signatures
    if index < signed:
        return index < signed - header.num_readonly_signed_accounts
    return index < static_count - header.num_readonly_unsigned_accounts


def _parsed_instructions(
    message: Message | MessageV0, accounts: list[Pubkey], chain: UsdcChain
) -> list[dict[str, Any]]:
    """What parse_token makes of our transferChecked: extra accounts after the authority are
    reported as multisig signers (that is how a Solana Pay reference shows up)."""
    rendered = []
    for instruction in message.instructions:
        program = accounts[instruction.program_id_index]
        assert program == TOKEN_PROGRAM and instruction.data[0] == TRANSFER_CHECKED
        keys = [str(accounts[i]) for i in instruction.accounts]
        amount = struct.unpack_from("<Q", bytes(instruction.data), 1)[0]
        decimals = instruction.data[9]
        info: dict[str, Any] = {"source": keys[0], "mint": keys[1], "destination": keys[2]}
        if len(keys) > 4:
            info["multisigAuthority"] = keys[3]
            info["signers"] = keys[4:]
        else:
            info["authority"] = keys[3]
        info["tokenAmount"] = _ui_token_amount(amount, decimals)
        rendered.append({
            "parsed": {"info": info, "type": "transferChecked"},
            "program": "spl-token",
            "programId": str(TOKEN_PROGRAM),
            "stackHeight": None,
        })
    return rendered


def _render(
    signature: str, message: Message | MessageV0, version: Version, accounts: list[Pubkey],
    before: dict[Pubkey, Account | None], after: dict[Pubkey, Account | None],
    outcome: TransactionMetadata | FailedTransactionMetadata, chain: UsdcChain,
) -> dict[str, Any]:
    static_count = len(message.account_keys)
    loaded_writable = sum(
        len(lookup.writable_indexes)
        for lookup in (message.address_table_lookups if isinstance(message, MessageV0) else [])
    )
    account_keys = []
    for index, key in enumerate(accounts):
        loaded = index >= static_count
        account_keys.append({
            "pubkey": str(key),
            "writable": (index < static_count + loaded_writable) if loaded
            else _writable(message, index, static_count),
            "signer": not loaded and index < message.header.num_required_signatures,
            "source": "lookupTable" if loaded else "transaction",
        })
    failed = isinstance(outcome, FailedTransactionMetadata)
    meta = outcome.meta() if isinstance(outcome, FailedTransactionMetadata) else outcome
    err = None
    if isinstance(outcome, FailedTransactionMetadata):
        # solders serializes a TransactionError exactly as the RPC does ({"InstructionError": …}).
        err = json.loads(UiTransactionStatusMeta(
            err=outcome.err(), fee=0, pre_balances=[], post_balances=[]
        ).to_json())["err"]
    message_json: dict[str, Any] = {
        "accountKeys": account_keys,
        "recentBlockhash": str(message.recent_blockhash),
        "instructions": _parsed_instructions(message, accounts, chain),
    }
    if isinstance(message, MessageV0):
        message_json["addressTableLookups"] = [
            {"accountKey": str(lookup.account_key),
             "writableIndexes": list(lookup.writable_indexes),
             "readonlyIndexes": list(lookup.readonly_indexes)}
            for lookup in message.address_table_lookups
        ]
    clock = chain.svm.get_clock()
    return {
        "slot": clock.slot,
        "blockTime": clock.unix_timestamp,
        "version": version,
        "transaction": {
            "signatures": [signature],
            "message": message_json,
        },
        "meta": {
            "err": err,
            "status": {"Err": err} if failed else {"Ok": None},
            "fee": meta.fee(),
            "preBalances": [a.lamports if a else 0 for a in before.values()],
            "postBalances": [a.lamports if a else 0 for a in after.values()],
            "innerInstructions": [],
            "logMessages": meta.logs(),
            "preTokenBalances": _token_balances(accounts, before, chain),
            "postTokenBalances": _token_balances(accounts, after, chain),
            "rewards": [],
            "computeUnitsConsumed": meta.compute_units_consumed(),
        },
    }
