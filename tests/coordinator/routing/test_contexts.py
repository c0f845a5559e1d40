"""The context rule: a pick needing ``min_context`` tokens passes over nodes whose context is
smaller, and the largest context on offer is that of live, non-draining nodes; through the router,
then on the sorted offers alone."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.router_nodes import CONSTANTS, MODEL, OTHER, WALL0, F, node

from coordinator.routing import NodeInfo, Router
from coordinator.routing.contexts import ContextOffers, declared_offers
from protocol.ids import NodeId


def router_with(*infos: NodeInfo) -> Router:
    router = Router()
    for info in infos:
        router.upsert_node(info, now=0.0, wall_now=WALL0)
    return router


def chosen(
    router: Router, min_context: int, *, exclude: frozenset[NodeId] = frozenset(), now: float = 0.0
) -> set[NodeId | None]:
    rng = random.Random(3)
    return {
        router.choose(MODEL, now=now, rng=rng, exclude=exclude, min_context=min_context)
        for _ in range(60)
    }


SMALL, LARGE, UNKNOWN = node("small", context=512), node("large", context=2048), node("unknown")


@pytest.mark.parametrize(
    ("nodes", "min_context", "expected"),
    [
        ((SMALL, LARGE), 0, {"small", "large"}),
        ((SMALL, LARGE), 512, {"small", "large"}),  # a context holds exactly its length
        ((SMALL, LARGE), 513, {"large"}),
        ((SMALL, LARGE), 2048, {"large"}),
        ((SMALL, LARGE), 2049, {None}),
        ((SMALL,), 4096, {None}),
        # A node that declared no context is never passed over on its account: it refuses
        # what does not fit.
        ((SMALL, UNKNOWN), 4096, {"unknown"}),
        ((SMALL, UNKNOWN), 100, {"small", "unknown"}),
        ((node("s2", context=512), SMALL, LARGE), 600, {"large"}),
    ],
)
def test_a_pick_passes_over_nodes_whose_context_is_too_small(
    nodes: tuple[NodeInfo, ...], min_context: int, expected: set[str | None]
) -> None:
    assert chosen(router_with(*nodes), min_context) == expected


def test_the_context_rule_combines_with_exclusions_load_and_breaker() -> None:
    router = router_with(node("small", context=512, slots=1), node("large", context=2048, slots=1))
    assert chosen(router, 1000, exclude=frozenset({NodeId("large")})) == {None}
    router.job_started(NodeId("large"), now=0.0)  # full: the small one's free slot is no help
    assert chosen(router, 1000) == {None}
    assert chosen(router, 100) == {"small"}
    router.job_finished(NodeId("large"), F, now=0.0, wall_now=WALL0)
    for _ in range(CONSTANTS.breaker_failures - 1):
        router.job_started(NodeId("large"), now=0.0)
        router.job_finished(NodeId("large"), F, now=0.0, wall_now=WALL0)
    assert chosen(router, 1000) == {None}  # parked
    later = CONSTANTS.breaker_park_s + 1
    assert chosen(router, 1000, now=later) == {"large"}  # half-open again


def test_contexts_are_per_model() -> None:
    both = NodeInfo(
        node_id=NodeId("both"), models=frozenset({MODEL, OTHER}), slots=4, declared_tok_s=None,
        first_seen=WALL0, contexts={MODEL: 512, OTHER: 8192},
    )
    router = router_with(both, node("large", context=2048))
    assert chosen(router, 1000) == {"large"}
    rng = random.Random(1)
    assert router.choose(OTHER, now=0.0, rng=rng, min_context=8000) == "both"
    assert router.largest_context(MODEL) == 2048
    assert router.largest_context(OTHER) == 8192
    assert router.context_of(NodeId("both"), OTHER) == 8192
    assert router.context_of(NodeId("both"), MODEL) == 512
    assert router.context_of(NodeId("gone"), MODEL) is None


def test_the_largest_context_is_that_of_live_nodes_busy_or_not() -> None:
    router = router_with(node("small", context=512, slots=1), node("large", context=2048, slots=1))
    assert router.largest_context(MODEL) == 2048
    router.job_started(NodeId("large"), now=0.0)  # busy still counts: it serves that context
    assert router.largest_context(MODEL) == 2048
    router.set_draining(NodeId("large"), now=0.0)
    assert router.largest_context(MODEL) == 512
    router.upsert_node(node("large", context=2048, slots=1), now=0.0, wall_now=WALL0)
    assert router.largest_context(MODEL) == 2048  # re-registering ends the drain
    router.remove_node(NodeId("large"))
    assert router.largest_context(MODEL) == 512
    router.upsert_node(node("large", context=4096, slots=1), now=0.0, wall_now=WALL0)
    assert router.largest_context(MODEL) == 4096  # what it declared on reconnecting
    router.forget_node(NodeId("large"))
    router.remove_node(NodeId("small"))
    assert router.largest_context(MODEL) is None
    assert router.largest_context(OTHER) is None


def test_undeclared_contexts_never_count_as_the_largest() -> None:
    router = router_with(node("unknown"))
    assert router.largest_context(MODEL) is None
    router.upsert_node(node("small", context=512), now=0.0, wall_now=WALL0)
    assert router.largest_context(MODEL) == 512


def test_a_remote_node_is_routed_on_the_context_its_owner_published() -> None:
    router = Router()
    remote = node("remote", context=4096)
    router.upsert_node(
        NodeInfo(
            node_id=remote.node_id, models=remote.models, slots=4, declared_tok_s=None,
            first_seen=WALL0, owner="replica-b", contexts=remote.contexts,
        ),
        now=0.0, wall_now=WALL0,
    )
    router.observe_remote(
        NodeId("remote"), in_flight=0, capacity=4, health_score=0.5, measured_tok_s=None,
        draining=False, now=0.0,
    )
    router.upsert_node(node("small", context=512), now=0.0, wall_now=WALL0)
    assert chosen(router, 1000) == {"remote"}
    assert router.largest_context(MODEL) == 4096
    router.observe_remote(
        NodeId("remote"), in_flight=0, capacity=4, health_score=0.5, measured_tok_s=None,
        draining=True, now=0.0,
    )
    assert router.largest_context(MODEL) == 512


@given(
    contexts=st.lists(st.one_of(st.none(), st.integers(1, 10_000)), min_size=1, max_size=12),
    min_context=st.integers(0, 12_000),
)
def test_every_pick_fits_and_none_only_when_nothing_fits(
    contexts: list[int | None], min_context: int
) -> None:
    infos = [node(f"n{i}", context=context) for i, context in enumerate(contexts)]
    router = router_with(*infos)
    fitting = {
        info.node_id for info in infos
        if (context := info.context_for(MODEL)) is None or context >= min_context
    }
    picked = Counter(
        router.choose(MODEL, now=0.0, rng=random.Random(seed), min_context=min_context)
        for seed in range(20)
    )
    if not fitting:
        assert set(picked) == {None}
    else:
        assert set(picked) <= fitting
    declared = [c for c in contexts if c is not None]
    assert router.largest_context(MODEL) == (max(declared) if declared else None)


# --- the sorted offers alone ----------------------------------------------------------------------

def test_offers_are_withdrawn_and_replaced_per_node() -> None:
    offers = ContextOffers()
    a, b = NodeId("a"), NodeId("b")
    offers.replace(a, (), declared_offers((MODEL, OTHER), {MODEL: 512, OTHER: 4096}))
    offers.replace(b, (), declared_offers((MODEL,), {}))
    assert offers.largest(MODEL) == 512
    assert offers.largest(OTHER) == 4096
    assert offers.smaller_than(MODEL, 1024) == [a]
    assert offers.smaller_than(MODEL, 0) == []
    offers.replace(a, declared_offers((MODEL, OTHER), {MODEL: 512, OTHER: 4096}), ())
    assert offers.largest(MODEL) is None  # only b, which declared none, is left
    assert offers.largest(OTHER) is None
    assert offers.smaller_than(MODEL, 10**9) == []


@given(
    declared=st.dictionaries(
        st.sampled_from([f"n{i}" for i in range(8)]),
        st.one_of(st.none(), st.integers(1, 10_000)),
    ),
    min_context=st.integers(0, 12_000),
)
def test_offers_agree_with_a_scan(declared: dict[str, int | None], min_context: int) -> None:
    offers = ContextOffers()
    for name, context in declared.items():
        offers.replace(NodeId(name), (), declared_offers(
            (MODEL,), {} if context is None else {MODEL: context}
        ))
    known = {name: context for name, context in declared.items() if context is not None}
    assert offers.largest(MODEL) == (max(known.values()) if known else None)
    small = offers.smaller_than(MODEL, min_context)
    too_small = {NodeId(n) for n, c in known.items() if min_context > 0 and c < min_context}
    assert set(small) == too_small
    assert [known[n] for n in small] == sorted(known[n] for n in small)
