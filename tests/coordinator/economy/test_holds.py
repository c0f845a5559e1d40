"""The hold rules over any interleaving of reserve / settle / expire / top-up: no balance ever
goes negative, a call never pays more than its hold, and the accounts always hold exactly what
was minted (grants and top-ups) less what was burned (nothing: calls only move credits)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from coordinator.economy.holds import call_charge, hold_grant
from coordinator.economy.postings import Books, ServingNode, call_postings
from coordinator.settings.economy import EconomySettings

ISSUANCE, PLATFORM, POOL, NODE = 0, 1, 2, 3
CONSUMERS = (10, 11)
SETTINGS = EconomySettings()


@given(cost=st.integers(-10, 10**12), hold=st.integers(0, 10**9),
       room=st.none() | st.integers(-10**9, 10**9))
def test_a_charge_is_never_negative_nor_more_than_the_hold_or_the_room_left(
    cost: int, hold: int, room: int | None
) -> None:
    charge = call_charge(cost, hold, spendable_after_expiry=room)
    assert 0 <= charge <= hold and charge <= max(cost, 0)
    if room is not None:
        assert charge <= max(room, 0)


@given(spendable=st.integers(-10, 10**9), amount=st.integers(0, 10**8),
       lines=st.integers(0, 16))
def test_a_grant_covers_the_hold_and_never_more_than_is_spendable(
    spendable: int, amount: int, lines: int
) -> None:
    granted = hold_grant(spendable, amount, lines)
    if spendable < amount:
        assert granted is None
    else:
        assert granted is not None and amount <= granted <= spendable


@dataclass
class _Hold:
    account: int
    amount: int
    live: bool = True


class HoldsMachine(RuleBasedStateMachine):
    """The ledger's bookkeeping as a fold: balances move only by balanced postings; reserved
    by holds granted, settled and expired."""

    @initialize()
    def books(self) -> None:
        self.balance = {a: 0 for a in (ISSUANCE, PLATFORM, POOL, NODE, *CONSUMERS)}
        self.reserved = dict.fromkeys(CONSUMERS, 0)
        self.holds: list[_Hold] = []
        self.minted = 0

    def _post(self, postings: list[tuple[int, int]]) -> None:
        assert sum(amount for _, amount in postings) == 0
        for account, amount in postings:
            self.balance[account] += amount

    @rule(account=st.sampled_from(CONSUMERS), amount=st.integers(1, 20_000))
    def top_up(self, account: int, amount: int) -> None:
        self._post([(ISSUANCE, -amount), (account, amount)])
        self.minted += amount

    @rule(account=st.sampled_from(CONSUMERS), amount=st.integers(0, 20_000),
          lines=st.sampled_from([0, 8]))
    def reserve(self, account: int, amount: int, lines: int) -> None:
        granted = hold_grant(self.balance[account] - self.reserved[account], amount, lines)
        if granted is not None:
            self.reserved[account] += granted
            self.holds.append(_Hold(account, granted))

    @precondition(lambda self: any(hold.live for hold in self.holds))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        hold = data.draw(st.sampled_from([h for h in self.holds if h.live]))
        hold.live = False
        self.reserved[hold.account] -= hold.amount

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), cost=st.integers(0, 40_000), tokens=st.integers(0, 50))
    def settle(self, data: st.DataObject, cost: int, tokens: int) -> None:
        hold = data.draw(st.sampled_from(self.holds))
        self.holds.remove(hold)
        account = hold.account
        room = None if hold.live else self.balance[account] - self.reserved[account]
        charge = call_charge(cost, hold.amount, spendable_after_expiry=room)
        assert charge <= hold.amount
        if hold.live:
            self.reserved[account] -= hold.amount
        postings = call_postings(
            account, charge,
            [ServingNode("n", NODE, tokens=tokens, trust=1.0, flap_reduction=0.25)],
            Books(platform=PLATFORM, bounty_pool=POOL), SETTINGS,
            bounty_multiplier=1.5, pool_balance=self.balance[POOL],
        )
        self._post([(p.account_id, p.amount) for p in postings])

    @invariant()
    def no_balance_is_negative(self) -> None:
        for account, balance in self.balance.items():
            if account != ISSUANCE:
                assert balance >= 0, (account, balance)
        for account in CONSUMERS:
            assert self.balance[account] >= self.reserved[account] >= 0

    @invariant()
    def the_accounts_hold_what_was_minted(self) -> None:
        held = sum(b for a, b in self.balance.items() if a != ISSUANCE)
        assert held == self.minted == -self.balance[ISSUANCE]


HoldsMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40,
                                          deadline=None)
test_holds_over_any_interleaving = HoldsMachine.TestCase
