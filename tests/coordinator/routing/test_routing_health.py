"""The rolling health window: score, ageing, probes, online time and persistence."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.routing import BUCKET_S, HealthBucket, HealthWindow, Outcome, laplace_score

DAY = 86_400.0
T0 = 1_700_000_000.0  # a wall-clock instant, aligned to no particular bucket
S, F, N = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL


def test_no_history_scores_one_half() -> None:
    assert HealthWindow(14).score(T0) == 0.5


def test_score_is_laplace_smoothed_and_ignores_neutrals() -> None:
    window = HealthWindow(14)
    for outcome in [S, S, S, F, N, N, N, N]:
        window.record(outcome, T0)
    assert window.score(T0) == (3 + 1) / (3 + 1 + 2)
    assert laplace_score(0, 0) == 0.5


def test_probes_weigh_like_jobs_and_are_kept_apart() -> None:
    window = HealthWindow(14)
    window.record(S, T0, probe=True)
    window.record(F, T0, probe=True)
    window.record(F, T0, probe=True)
    assert window.score(T0) == laplace_score(1, 2)
    (bucket,) = window.buckets()
    assert (bucket.successes, bucket.failures) == (0, 0)
    assert (bucket.probe_successes, bucket.probe_failures) == (1, 2)


def test_outcomes_older_than_the_window_are_dropped() -> None:
    window = HealthWindow(14)
    window.record(F, T0)
    assert window.score(T0 + 13 * DAY) == laplace_score(0, 1)
    assert window.score(T0 + 14 * DAY - BUCKET_S) == laplace_score(0, 1)
    assert window.score(T0 + 14 * DAY) == 0.5
    assert window.buckets(T0 + 14 * DAY) == ()


def test_window_slides_hour_by_hour() -> None:
    window = HealthWindow(1)
    for hour in range(48):
        window.record(S, T0 + hour * BUCKET_S)
    assert len(window.buckets(T0 + 47 * BUCKET_S)) == 24
    assert window.score(T0 + 47 * BUCKET_S) == laplace_score(24, 0)


def test_online_time_is_kept_but_not_scored() -> None:
    window = HealthWindow(14)
    window.add_online(30.0, T0)
    window.add_online(45.5, T0 + 1.0)
    (bucket,) = window.buckets()
    assert bucket.online_s == 75.5
    assert window.score(T0) == 0.5


def test_late_report_lands_in_its_own_hour() -> None:
    window = HealthWindow(14)
    window.record(S, T0 + 3 * BUCKET_S)
    window.record(F, T0)
    window.record(S, T0 + BUCKET_S)
    starts = [bucket.start for bucket in window.buckets()]
    assert starts == sorted(starts)
    assert len(starts) == 3
    assert window.score(T0 + 3 * BUCKET_S) == laplace_score(2, 1)


def test_report_older_than_the_window_is_ignored() -> None:
    window = HealthWindow(14)
    window.record(S, T0 + 20 * DAY)
    window.record(F, T0)
    assert window.score(T0 + 20 * DAY) == laplace_score(1, 0)


def test_buckets_are_aligned_hours() -> None:
    window = HealthWindow(14)
    window.record(S, T0)
    (bucket,) = window.buckets()
    assert bucket.start % BUCKET_S == 0
    assert bucket.start <= T0 < bucket.start + BUCKET_S


history = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=3 * BUCKET_S),
        st.sampled_from([S, F, N]),
        st.booleans(),
        st.floats(min_value=0.0, max_value=60.0),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(history)
def test_buckets_round_trip_through_plain_data(
    events: list[tuple[float, Outcome, bool, float]],
) -> None:
    window = HealthWindow(1)
    now = T0
    for gap, outcome, probe, online in events:
        now += gap
        window.record(outcome, now, probe=probe)
        window.add_online(online, now)
    saved = window.buckets(now)
    restored = HealthWindow.from_buckets(reversed(saved), window_days=1)
    assert restored.buckets(now) == saved
    assert restored.score(now) == window.score(now)
    stored = json.loads(json.dumps([dataclasses.asdict(bucket) for bucket in saved]))
    rebuilt = HealthWindow.from_buckets([HealthBucket(**row) for row in stored], window_days=1)
    assert rebuilt.buckets(now) == saved


@settings(max_examples=150, deadline=None)
@given(history)
def test_score_matches_a_recount_of_recent_outcomes(
    events: list[tuple[float, Outcome, bool, float]],
) -> None:
    window = HealthWindow(1)
    log: list[tuple[float, Outcome]] = []
    now = T0
    for gap, outcome, probe, _ in events:
        now += gap
        window.record(outcome, now, probe=probe)
        log.append((now, outcome))
    current_hour = now // BUCKET_S
    recent = [outcome for when, outcome in log if when // BUCKET_S > current_hour - 24]
    expected = laplace_score(recent.count(S), recent.count(F))
    assert window.score(now) == expected
    assert 0.0 < window.score(now) < 1.0
