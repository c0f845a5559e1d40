"""Measured throughput: from arrival times only, as a rolling median one job cannot move."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.routing.throughput import (
    MIN_TOKENS_PER_SAMPLE,
    SAMPLES_KEPT,
    ThroughputBook,
    generation_speed,
)
from protocol.ids import ModelId, NodeId

NODE, MODEL = NodeId("n"), ModelId("m")


def test_speed_is_tokens_between_first_and_last_arrival() -> None:
    assert generation_speed(21, 10.0, 12.0) == 10.0
    assert generation_speed(MIN_TOKENS_PER_SAMPLE - 1, 0.0, 1.0) is None, "too short to mean much"
    assert generation_speed(50, 3.0, 3.0) is None


def test_one_outlier_does_not_move_the_sustained_figure() -> None:
    book = ThroughputBook()
    for _ in range(6):
        book.record(NODE, MODEL, 20.0)
    assert book.record(NODE, MODEL, 500.0) == 20.0, "a lucky job"
    assert book.record(NODE, MODEL, 0.5) == 20.0, "a job stalled by its consumer"
    assert book.sustained(NODE, ModelId("other")) is None


@given(st.lists(st.floats(0.1, 1000.0), min_size=1, max_size=60), st.floats(0.1, 1000.0))
def test_the_figure_follows_the_recent_samples_only(old: list[float], recent: float) -> None:
    book = ThroughputBook()
    for speed in old:
        book.record(NODE, MODEL, speed)
    for _ in range(SAMPLES_KEPT):
        book.record(NODE, MODEL, recent)
    assert book.sustained(NODE, MODEL) == recent
