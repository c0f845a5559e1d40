"""The hold rules over any interleaving of reserve / settle / expire / top-up: no balance ever
goes negative, a call never pays more than its hold, and the accounts always hold exactly what
was minted (grants and top-ups) less what was burned (nothing: calls only move credits)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from coordinator.economy.holds import HoldAsk, call_charge, decide_holds, hold_grant
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


ASKS = st.lists(
    st.builds(
        HoldAsk,
        account_id=st.sampled_from((1, 2, 3)),
        amount=st.integers(0, 1_000),
        api_key_id=st.none() | st.sampled_from((7, 8)),
        line_holds=st.sampled_from((0, 4)),
    ),
    max_size=30,
)


@given(
    asks=ASKS,
    spendable=st.dictionaries(st.sampled_from((1, 2)), st.integers(-10, 5_000)),
    key_room=st.dictionaries(st.just(7), st.integers(-10, 2_000)),
)
def test_a_batch_of_holds_never_takes_more_than_an_account_or_a_key_has_room_for(
    asks: list[HoldAsk], spendable: dict[int, int], key_room: dict[int, int]
) -> None:
    read = (dict(spendable), dict(key_room))
    decisions = decide_holds(asks, spendable, key_room)
    assert (spendable, key_room) == read  # the caller's reads are left alone
    assert len(decisions) == len(asks)
    left, room = dict(spendable), dict(key_room)
    for ask, decision in zip(asks, decisions, strict=True):
        can_cover = left.get(ask.account_id, -1) >= ask.amount
        key_fits = ask.api_key_id is None or room.get(ask.api_key_id, ask.amount) >= ask.amount
        if not can_cover:
            assert decision.refusal == "balance"
        elif not key_fits:
            assert decision.refusal == "key_limit"
        else:
            assert decision.refusal == ""
            assert ask.amount <= decision.granted <= left[ask.account_id]
            assert decision.granted == hold_grant(left[ask.account_id], ask.amount, ask.line_holds)
            left[ask.account_id] -= decision.granted
            assert decision.limited_key == (ask.api_key_id if ask.api_key_id in room else None)
            if decision.limited_key is not None:
                room[decision.limited_key] -= ask.amount
    for account, taken_from in spendable.items():
        assert left[account] >= min(taken_from, 0)  # what was spendable is never overdrawn
    for key, had in key_room.items():
        assert room[key] >= min(had, 0)


def test_a_batch_decides_in_arrival_order() -> None:
    asks = [HoldAsk(1, 60), HoldAsk(1, 60, api_key_id=7), HoldAsk(1, 40), HoldAsk(2, 1)]
    decisions = decide_holds(asks, {1: 100}, {7: 50})
    assert [d.refusal for d in decisions] == ["", "balance", "", "balance"]
    line = decide_holds([HoldAsk(1, 10, line_holds=4)], {1: 100}, {})
    assert line[0].granted == 40  # four calls' worth, within half of what is spendable
    limited = decide_holds([HoldAsk(1, 30, api_key_id=7)] * 2, {1: 100}, {7: 50})
    assert [(d.refusal, d.limited_key) for d in limited] == [("", 7), ("key_limit", None)]


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
