"""The enrollment gate of the admission exam on a real router: where enrollment is required, a
node nobody enrolled sits its exam (it is probed, so its operator sees its speed) and passes it,
but is never given a paid job; an enrolled node is admitted as soon as it passes."""

from __future__ import annotations

import random

import pytest
from support.router_nodes import MODEL, OTHER, WALL0, node

from coordinator.hub.admission import Admission
from coordinator.hub.exam import ExamState, paid_allowed
from coordinator.routing import Router
from protocol.ids import ModelId, NodeId
from protocol.messages import ModelOffer

ENROLLED, STRANGER = NodeId("enrolled"), NodeId("stranger")
SHA = "c" * 64


def offers(*models: ModelId) -> tuple[ModelOffer, ...]:
    return tuple(ModelOffer(model=m, weights_sha256=SHA, context_length=2048) for m in models)


def network(*, enrollment_required: bool) -> tuple[Router, Admission]:
    router = Router()
    admission = Admission(
        router, 3, examined=lambda model: model == MODEL, enrollment_required=enrollment_required
    )
    for name, enrolled in ((ENROLLED, True), (STRANGER, False)):
        admission.joined(name, offers(MODEL, OTHER), enrolled=enrolled)
        router.upsert_node(node(name, models=(MODEL, OTHER)), now=0.0, wall_now=WALL0)
    return router, admission


def pass_exam(admission: Admission, node_id: NodeId) -> None:
    for _ in range(3):
        admission.verdict(node_id, MODEL, genuine=True)


def test_an_unenrolled_node_sits_and_passes_its_exam_but_takes_no_paid_job() -> None:
    router, admission = network(enrollment_required=True)
    rng = random.Random(0)
    assert admission.due(STRANGER, [MODEL, OTHER]) == [MODEL]  # probed like anyone
    pass_exam(admission, STRANGER)
    pass_exam(admission, ENROLLED)
    assert admission.state(STRANGER, MODEL) is ExamState.ADMITTED
    assert not admission.paid_allowed(STRANGER, MODEL)
    assert admission.paid_allowed(ENROLLED, MODEL)
    for model in (MODEL, OTHER):  # a model without a fingerprint is no way round it
        assert not router.paid_eligible(STRANGER, model)
        assert {router.choose(model, now=0.0, rng=rng) for _ in range(20)} == {ENROLLED}
    assert router.paid_held(STRANGER) == (MODEL, OTHER)  # and so on every replica


def test_enrolling_and_reconnecting_lifts_the_hold_once_the_exam_is_passed_again() -> None:
    router, admission = network(enrollment_required=True)
    pass_exam(admission, STRANGER)
    admission.left(STRANGER)
    admission.joined(STRANGER, offers(MODEL, OTHER), enrolled=True)
    assert router.paid_eligible(STRANGER, OTHER)
    assert not router.paid_eligible(STRANGER, MODEL)  # a new connection sits the exam again
    pass_exam(admission, STRANGER)
    assert router.paid_eligible(STRANGER, MODEL)


def test_without_the_requirement_an_unenrolled_node_is_paid_after_its_exam() -> None:
    router, admission = network(enrollment_required=False)
    assert router.paid_eligible(STRANGER, OTHER)
    pass_exam(admission, STRANGER)
    assert router.paid_eligible(STRANGER, MODEL)


@pytest.mark.parametrize("state", list(ExamState))
@pytest.mark.parametrize("enrolled", [True, False])
@pytest.mark.parametrize("required", [True, False])
def test_paid_only_when_admitted_and_enrolled_where_required(
    state: ExamState, enrolled: bool, required: bool
) -> None:
    expected = state is ExamState.ADMITTED and (enrolled or not required)
    assert paid_allowed(state, enrolled=enrolled, enrollment_required=required) is expected


def test_a_fake_verdict_on_a_node_connected_elsewhere_is_kept_for_its_owner() -> None:
    router, admission = network(enrollment_required=True)
    elsewhere = NodeId("elsewhere")
    admission.verdict(elsewhere, MODEL, genuine=True)  # the owner's exam counts its own only
    admission.verdict(elsewhere, OTHER, genuine=False)  # no fingerprint: nothing to tell
    assert admission.fakes_for_owners() == ()
    admission.verdict(elsewhere, MODEL, genuine=False)
    admission.verdict(elsewhere, MODEL, genuine=False)
    assert admission.fakes_for_owners() == ((1, elsewhere, MODEL), (2, elsewhere, MODEL))
    assert admission.fakes_serial == 2
    assert elsewhere not in router
