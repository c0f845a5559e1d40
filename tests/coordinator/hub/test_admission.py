"""The admission exam carried out on a real router: a joining node is held from paid jobs for
each model with a fingerprint until it passes, a fake verdict holds it again at once, a model
without a fingerprint is never held, and the holds travel in the node's presence."""

from __future__ import annotations

import random

from support.router_nodes import MODEL, OTHER, WALL0, node

from coordinator.hub.admission import Admission
from coordinator.hub.exam import ExamState
from coordinator.routing import Router
from protocol.ids import ModelId, NodeId
from protocol.messages import ModelOffer

A, B = NodeId("a"), NodeId("b")
SHA = "c" * 64


def offers(*models: ModelId) -> tuple[ModelOffer, ...]:
    return tuple(ModelOffer(model=m, weights_sha256=SHA, context_length=2048) for m in models)


def network(required: int = 3) -> tuple[Router, Admission]:
    router = Router()
    admission = Admission(router, required, examined=lambda model: model == MODEL)
    for name in (A, B):
        admission.joined(name, offers(MODEL, OTHER))
        router.upsert_node(node(name, models=(MODEL, OTHER)), now=0.0, wall_now=WALL0)
    return router, admission


def test_a_new_node_gets_paid_jobs_only_for_models_it_passed() -> None:
    router, admission = network()
    rng = random.Random(0)
    assert router.choose(MODEL, now=0.0, rng=rng) is None
    assert router.choose(OTHER, now=0.0, rng=rng) in (A, B)  # no fingerprint: no exam
    assert admission.due(A, [MODEL, OTHER]) == [MODEL]
    for _ in range(3):
        admission.verdict(A, MODEL, genuine=True)
    assert admission.due(A, [MODEL, OTHER]) == []
    assert {router.choose(MODEL, now=0.0, rng=rng) for _ in range(20)} == {A}
    assert router.paid_held(B) == (MODEL,)


def test_the_first_fake_verdict_holds_an_admitted_node_at_once() -> None:
    router, admission = network()
    for _ in range(3):
        admission.verdict(A, MODEL, genuine=True)
    version = router.local_version
    admission.verdict(A, MODEL, genuine=False)
    assert admission.state(A, MODEL) is ExamState.QUARANTINED
    assert not router.paid_eligible(A, MODEL)
    assert router.local_version > version  # other replicas hear of it in the next presence
    for passed in range(1, 4):
        admission.verdict(A, MODEL, genuine=True)
        assert router.paid_eligible(A, MODEL) is (passed == 3)


def test_a_reconnect_sits_the_exam_again_and_a_stranger_s_verdict_is_ignored() -> None:
    router, admission = network()
    for _ in range(3):
        admission.verdict(A, MODEL, genuine=True)
    admission.left(A)
    admission.joined(A, offers(MODEL))
    assert not router.paid_eligible(A, MODEL)
    admission.verdict(NodeId("elsewhere"), MODEL, genuine=False)  # owned by another replica
    assert router.paid_held(NodeId("elsewhere")) == ()


def test_without_an_exam_every_node_is_admitted_as_it_joins() -> None:
    router, admission = network(required=0)
    assert router.paid_eligible(A, MODEL) and admission.due(A, [MODEL]) == []
    admission.verdict(A, MODEL, genuine=False)
    assert router.paid_eligible(A, MODEL)
