"""The admission exam's rules, pure: K passes admit, one fake verdict quarantines, a new
weights identity or a reconnect sits the exam again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.hub.exam import AdmissionExam, ExamState
from protocol.ids import ModelId, NodeId

NODE, OTHER = NodeId("node-a"), NodeId("node-b")
MODEL = ModelId("gemma-3-270m")
SHA, OTHER_SHA = "a" * 64, "b" * 64


def test_k_genuine_verdicts_admit_and_not_fewer() -> None:
    exam = AdmissionExam(required=3)
    assert exam.enrol(NODE, MODEL, SHA) is ExamState.SITTING
    for due in (3, 2, 1):
        assert not exam.admitted(NODE, MODEL)
        assert exam.checks_due(NODE, MODEL) == due
        exam.record(NODE, MODEL, genuine=True)
    assert exam.admitted(NODE, MODEL)
    assert not exam.admitted(OTHER, MODEL)


def test_first_fake_verdict_quarantines_until_a_full_re_exam() -> None:
    exam = AdmissionExam(required=3)
    exam.enrol(NODE, MODEL, SHA)
    for _ in range(5):
        exam.record(NODE, MODEL, genuine=True)
    assert exam.record(NODE, MODEL, genuine=False) is ExamState.QUARANTINED
    assert not exam.admitted(NODE, MODEL)
    exam.record(NODE, MODEL, genuine=True)
    exam.record(NODE, MODEL, genuine=True)
    assert exam.state(NODE, MODEL) is ExamState.QUARANTINED
    exam.record(NODE, MODEL, genuine=True)
    assert exam.admitted(NODE, MODEL)


def test_new_sha_or_reconnect_sits_again_same_sha_keeps_state() -> None:
    exam = AdmissionExam(required=1)
    exam.enrol(NODE, MODEL, SHA)
    exam.record(NODE, MODEL, genuine=True)
    assert exam.enrol(NODE, MODEL, SHA) is ExamState.ADMITTED
    assert exam.enrol(NODE, MODEL, OTHER_SHA) is ExamState.SITTING
    exam.record(NODE, MODEL, genuine=True)
    exam.forget(NODE)
    assert exam.enrol(NODE, MODEL, OTHER_SHA) is ExamState.SITTING


def test_unenrolled_pair_is_not_admitted_unless_exam_is_off() -> None:
    assert not AdmissionExam(required=3).admitted(NODE, MODEL)
    assert AdmissionExam(required=0).admitted(NODE, MODEL)


@given(st.lists(st.booleans(), max_size=40), st.integers(min_value=1, max_value=5))
def test_admitted_iff_last_k_verdicts_since_last_fake_are_genuine(
    verdicts: list[bool], required: int
) -> None:
    exam = AdmissionExam(required=required)
    exam.enrol(NODE, MODEL, SHA)
    for genuine in verdicts:
        exam.record(NODE, MODEL, genuine=genuine)
    tail = verdicts[len(verdicts) - verdicts[::-1].index(False):] if False in verdicts else verdicts
    assert exam.admitted(NODE, MODEL) == (len(tail) >= required)
