"""The daily fold: each term as the product page states it, and recomputation from history."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coordinator.points import (
    AuthenticityVerdict,
    Contribution,
    History,
    NodeFacts,
    NodeTerms,
    PointsConstants,
    compute_day,
    compute_range,
    day_start,
    removal_day,
    removed_nodes,
)
from protocol.ids import ModelId, NodeId

Builder = Callable[..., list[Contribution]]
FactsBuilder = Callable[..., NodeFacts]

DAY = date(2025, 3, 10)  # the builders' default day
MODEL = ModelId("gemma-3-270m")
CONSTANTS = PointsConstants()


def terms_of(
    records: list[Contribution],
    node_facts: NodeFacts,
    constants: PointsConstants = CONSTANTS,
    day: date = DAY,
) -> NodeTerms:
    (node,) = compute_day(History(records), [node_facts], day, constants).nodes
    return node.terms


# Monotone in each term, holding the rest.

base_days = st.fixed_dictionaries(
    {
        "online": st.floats(0.0, 1.0),
        "passed": st.integers(0, 1_440),
        "failed": st.integers(0, 100),
        "jobs": st.integers(0, 500),
        "tok_s": st.floats(1.0, 300.0),
        "tokens": st.integers(0, 10_000_000),
        "age_days": st.integers(0, 30),
    }
)


@settings(max_examples=200)
@given(
    base_days,
    st.sampled_from(["online", "passed", "jobs", "tok_s", "tokens", "age_days"]),
    st.floats(0.0, 1.0),
)
def test_more_of_any_term_never_lowers_the_score(
    make_day: Builder,
    make_facts: FactsBuilder,
    base: dict[str, float],
    term: str,
    more: float,
) -> None:
    bumped = dict(base)
    if term == "online":
        bumped["online"] = base["online"] + (1.0 - base["online"]) * more
    elif term == "tok_s":
        bumped["tok_s"] = base["tok_s"] * (1.0 + 10.0 * more)
    else:
        bumped[term] = int(base[term] + 1 + 1_000 * more)

    def score(params: dict[str, float]) -> float:
        day_params = {key: value for key, value in params.items() if key != "age_days"}
        node_facts = make_facts("n", age_days=int(params["age_days"]))
        return terms_of(make_day("n", **day_params), node_facts).score

    assert score(bumped) >= score(base) - 1e-9


def test_half_reachable_scores_half(make_day: Builder, make_facts: FactsBuilder) -> None:
    whole = terms_of(make_day("n", online=1.0, tok_s=40.0, tokens=90_000), make_facts("n"))
    half = terms_of(make_day("n", online=0.5, tok_s=40.0, tokens=90_000), make_facts("n"))
    assert half.uptime == 0.5
    assert half.score == pytest.approx(whole.score / 2)


def test_offline_node_scores_about_zero(make_day: Builder, make_facts: FactsBuilder) -> None:
    offline = terms_of(make_day("n", online=0.0, tok_s=140.0, tokens=50_000), make_facts("n"))
    assert offline.uptime == 0.0
    assert offline.score == 0.0
    barely = terms_of(make_day("n", online=0.001, tok_s=140.0, tokens=50_000), make_facts("n"))
    assert (
        0.0
        < barely.score
        < 0.01 * terms_of(make_day("n", tok_s=140.0, tokens=50_000), make_facts("n")).score
    )


def test_unverified_node_earns_nothing(make_day: Builder, make_facts: FactsBuilder) -> None:
    unverified = terms_of(make_day("n", passed=0, tok_s=80.0), make_facts("n"))
    assert unverified.pass_rate == 0.0
    assert unverified.score == 0.0


def test_pass_rate_counts_checks_and_jobs(make_day: Builder, make_facts: FactsBuilder) -> None:
    node = terms_of(
        make_day("n", passed=900, failed=100, jobs=80, failed_jobs=20, tokens=1), make_facts("n")
    )
    assert node.pass_rate == pytest.approx(980 / 1_100)
    assert node.uptime == pytest.approx(980 / 1_100)


def test_hardware_doubles_from_20_to_80_tok_s(make_day: Builder, make_facts: FactsBuilder) -> None:
    slow = terms_of(make_day("n", tok_s=20.0), make_facts("n"))
    fast = terms_of(make_day("n", tok_s=80.0), make_facts("n"))
    assert fast.hardware == pytest.approx(2 * slow.hardware)
    assert fast.score == pytest.approx(2 * slow.score)


def test_hardware_uses_the_days_median_else_the_last_known(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    today = terms_of(make_day("n", tok_s=(10.0, 64.0, 90.0)), make_facts("n"))
    assert today.measured_tok_s == 64.0
    assert today.measured_today

    yesterday = make_day("n", DAY - timedelta(days=3), tok_s=(36.0,))
    carried = terms_of([*yesterday, *make_day("n")], make_facts("n"))
    assert carried.measured_tok_s == 36.0
    assert not carried.measured_today
    assert carried.hardware == 6.0

    never = terms_of(make_day("n"), make_facts("n"))
    assert never.measured_tok_s is None
    assert never.hardware == 0.0


def test_each_extra_in_demand_model_adds_ten_percent(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    other, third = ModelId("llama-3.2-3b"), ModelId("qwen-2.5-7b")
    one = terms_of(make_day("n", tokens={MODEL: 40_000}), make_facts("n"))
    three = terms_of(
        make_day("n", tokens={MODEL: 20_000, other: 10_000, third: 10_000}), make_facts("n")
    )
    assert three.extra_models == 2
    assert three.model_value == pytest.approx(one.model_value * 1.2)


def test_a_model_without_demand_earns_no_bonus(make_day: Builder, make_facts: FactsBuilder) -> None:
    niche = ModelId("niche-1b")
    node = terms_of(make_day("n", tokens={MODEL: 1_000_000, niche: 10}), make_facts("n"))
    assert node.models_served == (MODEL,)
    assert node.extra_models == 0


def test_fake_verdict_collapses_model_value_to_five_percent(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    honest = terms_of(make_day("n", tok_s=80.0, tokens=1_000_000), make_facts("n"))
    caught = terms_of(make_day("n", tok_s=80.0, tokens=1_000_000, fakes=1), make_facts("n"))
    assert caught.collapsed
    assert caught.model_value == pytest.approx(0.05 * honest.model_value)
    assert caught.trust == CONSTANTS.trust_start
    assert caught.penalties == CONSTANTS.fake_model_penalty
    assert caught.score < honest.score


def test_trust_ramp_endpoints(make_day: Builder, make_facts: FactsBuilder) -> None:
    assert terms_of(make_day("n"), make_facts("n", age_days=0)).trust == pytest.approx(0.10)
    assert terms_of(make_day("n"), make_facts("n", age_days=7)).trust == pytest.approx(0.55)
    assert terms_of(make_day("n"), make_facts("n", age_days=14)).trust == 1.0
    assert terms_of(make_day("n"), make_facts("n", age_days=200)).trust == 1.0


def test_penalty_days_pause_the_ramp(make_day: Builder, make_facts: FactsBuilder) -> None:
    penalised = make_day("n", DAY - timedelta(days=5), penalty=10.0)
    node = terms_of([*penalised, *make_day("n")], make_facts("n", age_days=14))
    assert node.clean_days == 13
    allowed = make_day("n", DAY - timedelta(days=5), failed=CONSTANTS.failed_check_allowance)
    assert terms_of([*allowed, *make_day("n")], make_facts("n", age_days=14)).clean_days == 14


def test_a_fake_verdict_restarts_the_ramp(make_day: Builder, make_facts: FactsBuilder) -> None:
    caught = make_day("n", DAY - timedelta(days=4), fakes=1)
    node = terms_of([*caught, *make_day("n")], make_facts("n", age_days=100))
    assert node.clean_days == 3
    assert node.trust == pytest.approx(0.10 + 0.90 * 3 / 14)


def test_failed_checks_beyond_the_allowance_are_penalised(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    node = terms_of(make_day("n", passed=1_300, failed=140, tokens=10_000), make_facts("n"))
    expected = CONSTANTS.failed_check_penalty * (140 - CONSTANTS.failed_check_allowance)
    assert node.penalties == expected
    assert node.score == pytest.approx(node.uptime * node.model_value - expected)


def test_persistent_offender_is_removed_and_earns_nothing_after(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    records = [
        *make_day("n", DAY - timedelta(days=10), fakes=1),
        *make_day("n", DAY - timedelta(days=5), fakes=1),
        *make_day("n", DAY, fakes=1, tokens=10_000),
        *make_day("n", DAY + timedelta(days=1), tok_s=80.0, tokens=1_000_000),
    ]
    history = History(records)
    assert removed_nodes(history, CONSTANTS, DAY) == {NodeId("n"): DAY}
    assert removed_nodes(history, CONSTANTS, DAY - timedelta(days=1)) == {}
    days = compute_range(history, [make_facts("n")], DAY, DAY + timedelta(days=1), CONSTANTS)
    removed_day, after = (result.nodes[0].terms for result in days)
    assert removed_day.removed and after.removed
    assert removed_day.penalties == CONSTANTS.fake_model_penalty
    assert after.score == 0.0


def test_fake_verdicts_spread_beyond_the_window_do_not_remove() -> None:
    times = [day_start(DAY) + offset * 86_400.0 for offset in (0, 10, 20, 30)]
    assert removal_day(times, CONSTANTS) is None
    assert removal_day(times, CONSTANTS.model_copy(update={"offender_window_days": 21})) == (
        DAY + timedelta(days=20)
    )


def test_recomputing_with_new_constants_changes_scores_not_history(
    make_day: Builder, make_facts: FactsBuilder
) -> None:
    records = [
        *make_day("a", tok_s=40.0, tokens=250_000, failed=60),
        *make_day("b", online=0.7, tok_s=90.0, tokens=10_000, fakes=1),
    ]
    history = History(records)
    snapshot = History(list(records))
    node_facts = [make_facts("a", age_days=3), make_facts("b", "wallet-b")]
    before = compute_day(history, node_facts, DAY, CONSTANTS)
    stricter = PointsConstants(
        version="2", trust_ramp_days=28, failed_check_penalty=2.0, fake_model_penalty=1_000.0
    )
    after = compute_day(history, node_facts, DAY, stricter)

    assert (before.constants_version, after.constants_version) == ("1", "2")
    for old, new in zip(before.nodes, after.nodes, strict=True):
        assert new.score < old.score
    assert compute_day(history, node_facts, DAY, CONSTANTS) == before
    assert history == snapshot
    assert history.contributions == tuple(sorted(records, key=lambda record: record.at))
    with pytest.raises(dataclasses.FrozenInstanceError):
        history.contributions[0].at = 0.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        CONSTANTS.trust_start = 0.5


def test_contributions_without_facts_are_refused(make_day: Builder) -> None:
    with pytest.raises(ValueError, match="no facts"):
        compute_day(History(make_day("ghost")), [], DAY, CONSTANTS)


def test_only_active_nodes_appear(make_day: Builder, make_facts: FactsBuilder) -> None:
    result = compute_day(
        History(make_day("a")), [make_facts("a"), make_facts("idle")], DAY, CONSTANTS
    )
    assert [node.node_id for node in result.nodes] == ["a"]
    assert (
        compute_day(History(make_day("a")), [make_facts("a")], DAY + timedelta(1), CONSTANTS).nodes
        == ()
    )


def test_compute_range_is_compute_day_per_day(make_day: Builder, make_facts: FactsBuilder) -> None:
    records = [*make_day("a", DAY, tokens=100), *make_day("a", DAY + timedelta(days=1))]
    history = History(records)
    days = compute_range(history, [make_facts("a")], DAY, DAY + timedelta(days=2), CONSTANTS)
    assert [result.day for result in days] == [DAY + timedelta(days=n) for n in range(3)]
    assert days[0] == compute_day(history, [make_facts("a")], DAY, CONSTANTS)
    with pytest.raises(ValueError, match="before it starts"):
        compute_range(history, [make_facts("a")], DAY, DAY - timedelta(days=1), CONSTANTS)


def test_verdicts_count_by_the_utc_day_of_their_time(make_facts: FactsBuilder) -> None:
    late = AuthenticityVerdict(
        node_id=NodeId("n"), at=day_start(DAY) - 0.5, model=MODEL, genuine=False
    )
    history = History([late])
    assert compute_day(history, [make_facts("n")], DAY, CONSTANTS).nodes == ()
    (node,) = compute_day(history, [make_facts("n")], DAY - timedelta(days=1), CONSTANTS).nodes
    assert node.terms.collapsed


day_events = st.tuples(
    st.integers(0, 60),  # failed checks
    st.booleans(),  # fake verdict
    st.booleans(),  # direct penalty
)


@settings(max_examples=150)
@given(st.lists(day_events, min_size=1, max_size=30), st.integers(0, 40), st.integers(1, 20))
def test_clean_days_match_a_day_by_day_count(
    make_day: Builder,
    make_facts: FactsBuilder,
    events: list[tuple[int, bool, bool]],
    age_days: int,
    ramp_days: int,
) -> None:
    constants = PointsConstants(trust_ramp_days=ramp_days)
    first_day = DAY - timedelta(days=len(events) - 1)
    records = [
        record
        for offset, (failed, fake, penalty) in enumerate(events)
        for record in make_day(
            "n",
            first_day + timedelta(days=offset),
            failed=failed,
            fakes=int(fake),
            penalty=5.0 if penalty else 0.0,
        )
    ]
    node_facts = make_facts("n", age_days=age_days)
    seen = (DAY - timedelta(days=age_days) - first_day).days  # offset of the first-seen day
    today = len(events) - 1

    def unclean(offset: int) -> bool:
        if not 0 <= offset < len(events):
            return False
        failed, fake, penalty = events[offset]
        return fake or penalty or failed > constants.failed_check_allowance

    fakes = [offset for offset, (_, fake, _) in enumerate(events) if fake]
    if fakes and fakes[-1] == today:
        expected = 0
    else:
        start = max(seen, fakes[-1] + 1) if fakes else seen
        expected = sum(not unclean(offset) for offset in range(start, today))
    assert terms_of(records, node_facts, constants).clean_days == min(ramp_days, expected)
