"""The comparison core: honest drift passes, systematic drift and made-up tokens are caught."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.probes.plausibility import compare
from coordinator.settings.authenticity import PlausibilityTolerances
from protocol.chat import TokenLogprob, TopLogprob

TOLERANCES = PlausibilityTolerances()


def answer(length: int, seed: int) -> list[TokenLogprob]:
    """A made-up answer: each token with its logprob and a top-3 that leads with it."""
    rng = random.Random(seed)
    tokens = []
    for index in range(length):
        chosen = -rng.uniform(0.0, 2.0)
        tokens.append(TokenLogprob(
            token_id=index, token=f"t{index}", logprob=chosen,
            top=(
                TopLogprob(token=f"t{index}", logprob=chosen),
                TopLogprob(token=f"a{index}", logprob=chosen - rng.uniform(0.1, 3)),
                TopLogprob(token=f"b{index}", logprob=chosen - rng.uniform(3, 6)),
            ),
        ))
    return tokens


def shifted(tokens: list[TokenLogprob], noise: float, seed: int) -> list[TokenLogprob]:
    """The same tokens with every logprob moved by up to ``noise`` nats."""
    rng = random.Random(seed)

    def move(value: float) -> float:
        return value + rng.uniform(-noise, noise)

    return [
        token.model_copy(update={
            "logprob": move(token.logprob),
            "top": tuple(
                alt.model_copy(update={"logprob": move(alt.logprob)}) for alt in token.top
            ),
        })
        for token in tokens
    ]


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(8, 64))
def test_honest_float_drift_is_genuine(seed: int, length: int) -> None:
    claimed = answer(length, seed)
    verdict = compare(claimed, shifted(claimed, 0.05, seed + 1), TOLERANCES)
    assert verdict.verdict == "genuine", verdict.reason
    assert verdict.implausible == 0


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(8, 64))
def test_a_systematic_shift_like_a_cruder_quantization_is_caught(seed: int, length: int) -> None:
    claimed = answer(length, seed)
    verdict = compare(claimed, shifted(claimed, 1.0, seed + 1), TOLERANCES)
    assert verdict.verdict == "substituted", verdict.reason


def test_one_odd_token_among_many_does_not_condemn() -> None:
    claimed = answer(40, 3)
    reference = list(claimed)
    reference[7] = reference[7].model_copy(update={"logprob": reference[7].logprob - 3.0})
    verdict = compare(claimed, reference, TOLERANCES)
    assert verdict.verdict == "genuine"
    assert verdict.implausible == 1
    assert [t.index for t in verdict.tokens if not t.plausible] == [7]


def test_too_few_tokens_decide_nothing() -> None:
    claimed = answer(TOLERANCES.min_tokens - 1, 1)
    verdict = compare(claimed, shifted(claimed, 2.0, 2), TOLERANCES)
    assert verdict.verdict == "inconclusive"
    assert verdict.genuine is None


def test_tokens_are_compared_by_text_when_ids_are_unknown() -> None:
    claimed = [t.model_copy(update={"token_id": None}) for t in answer(20, 5)]
    reference = answer(20, 5)
    assert compare(claimed, reference, TOLERANCES).verdict == "genuine"
    assert len(compare(claimed, reference, TOLERANCES).tokens) == 20


def test_a_greedy_answer_may_leave_the_fingerprint_only_at_a_near_tie() -> None:
    reference = answer(30, 9)
    claimed = list(reference)
    near = reference[12].top[1]  # the runner-up of token 12
    claimed[12] = TokenLogprob(token_id=999, token=near.token, logprob=near.logprob)
    gap = reference[12].top[0].logprob - near.logprob
    tight = TOLERANCES.model_copy(update={"tie_margin": gap - 0.01})
    loose = TOLERANCES.model_copy(update={"tie_margin": gap + 0.01})
    assert compare(claimed, reference, loose, divergence_allowed=True).verdict == "genuine"
    caught = compare(claimed, reference, tight, divergence_allowed=True)
    assert caught.verdict == "substituted" and caught.diverged_at == 12
    # A token the reference does not even list is never a near-tie.
    claimed[12] = TokenLogprob(token_id=998, token="zzz", logprob=-0.1)
    assert compare(claimed, reference, loose, divergence_allowed=True).verdict == "substituted"


def test_alternatives_that_share_a_text_are_not_paired() -> None:
    """Byte tokens of partial UTF-8 all read U+FFFD: pairing them by text would invent drift."""
    claimed = answer(20, 4)
    reference = list(claimed)
    for index in range(len(claimed)):
        chosen = claimed[index].top[0]
        first = TopLogprob(token="\ufffd", logprob=-2)
        second = TopLogprob(token="\ufffd", logprob=-6)
        claimed[index] = claimed[index].model_copy(update={"top": (chosen, first, second)})
        reference[index] = reference[index].model_copy(update={"top": (chosen, second, first)})
    verdict = compare(claimed, reference, TOLERANCES)
    assert verdict.verdict == "genuine" and verdict.top_drift == 0.0


def test_control_tokens_that_read_empty_are_not_paired() -> None:
    """End of turn in one run's top-k and end of text in the other's both read '': they are two
    tokens, and pairing them by text would invent drift."""
    claimed = answer(20, 5)
    reference = list(claimed)
    for index in range(len(claimed)):
        chosen = claimed[index].top[0]
        end_of_turn = TopLogprob(token="", logprob=chosen.logprob - 1)
        end_of_text = TopLogprob(token="", logprob=chosen.logprob - 5)
        claimed[index] = claimed[index].model_copy(update={"top": (chosen, end_of_turn)})
        reference[index] = reference[index].model_copy(update={"top": (chosen, end_of_text)})
    verdict = compare(claimed, reference, TOLERANCES)
    assert verdict.verdict == "genuine" and verdict.top_drift == 0.0
