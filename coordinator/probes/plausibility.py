"""Did the claimed model produce these tokens? Claimed logprobs against a genuine run's.

A node reports, for each token it emits, the token's log-probability and the top-k alternatives
(every job asks for them). A genuine run of the claimed weights, scoring the same prompt and the
same tokens, yields the reference figures. Honest runs differ only by floating-point drift
(threads, batch sizes, kernels, engine builds): small, and spread evenly. A different model
differs everywhere:

* a smaller stand-in model puts its probability mass elsewhere: claimed logprobs are off by
  whole nats, the top-k lists barely overlap, and its tokens are often unlikely under the
  reference;
* a cruder quantization of the same model agrees on the ranking most of the time (so greedy text
  often matches and a text-only test sees nothing), but its logprobs shift by tenths of a nat on
  most tokens, and by more on the alternatives (measured by ``bench/authenticity.py`` on
  Gemma 3 270M: Q4_0 / Q2_K re-quantizations of the Q4_K_M reference drift 0.10–1.5 nats mean
  on the emitted tokens but 0.32–0.99 on the top-5, where honest setups stay within 0.01–0.17
  and 0.05–0.13: the alternatives are where a re-quantization shows).

So the statistic is the *mean absolute logprob drift*, over the emitted tokens (``mean_drift``)
and over every top-k alternative both runs list (``top_drift``), each token's drift capped
(``drift_cap``) so that one bizarre token cannot decide alone. Alternatives are paired by text,
leaving out texts that name several tokens (partial UTF-8 pieces all read U+FFFD). Both means
average many tokens, so honest noise shrinks while a systematic shift stays: an answer is
``substituted`` when either mean exceeds its tolerance, or when more than
``implausible_fraction`` of the tokens drift beyond ``token_drift`` each. Fewer than
``min_tokens`` comparable tokens is ``inconclusive``. A node cannot game it by reporting made-up
numbers: without the real weights it does not know the reference figures, and reporting no
logprobs at all is a failed check for the caller to judge.

Tokens are compared while both runs agree on them (ids when both have ids, else text), which
lets a greedy answer be checked against a stored greedy fingerprint: where the node's greedy
path leaves the fingerprint's, it must do so at a near-tie of the reference (within
``tie_margin``), otherwise the token itself is implausible.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from coordinator.settings.authenticity import PlausibilityTolerances
from protocol.chat import TokenLogprob, TopLogprob

Verdict = Literal["genuine", "substituted", "inconclusive"]


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """One emitted token: what the node claimed and what the genuine run says."""

    index: int
    token: str
    claimed: float
    reference: float
    top_drift: float | None  # mean drift over shared alternatives; None when none are shared
    plausible: bool

    @property
    def drift(self) -> float:
        return abs(self.claimed - self.reference)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The verdict on one answer, with the evidence behind it."""

    verdict: Verdict
    tokens: tuple[TokenCheck, ...]
    mean_drift: float
    top_drift: float
    implausible: int
    diverged_at: int | None  # where the answers parted ways, if they did
    reason: str

    @property
    def genuine(self) -> bool | None:
        """True or False once decided; None when inconclusive."""
        return None if self.verdict == "inconclusive" else self.verdict == "genuine"


def _same_token(claimed: TokenLogprob, reference: TokenLogprob) -> bool:
    if claimed.token_id is not None and reference.token_id is not None:
        return claimed.token_id == reference.token_id
    return claimed.token == reference.token


def _unambiguous(top: Sequence[TopLogprob]) -> dict[str, float]:
    """Alternatives by text, leaving out texts that do not name one token: several ids can
    spell the same text (above all the U+FFFD of partial UTF-8 sequences, and the empty text of
    control tokens: Gemma 3 has thousands, end of turn and end of text among them, whose ranks
    two honest runs may swap at the edge of a top-k)."""
    counts = Counter(alt.token for alt in top)
    return {
        alt.token: alt.logprob for alt in top
        if counts[alt.token] == 1 and alt.token and "\ufffd" not in alt.token
    }


def _top_drift(claimed: TokenLogprob, reference: TokenLogprob, cap: float) -> float | None:
    mine, theirs = _unambiguous(claimed.top), _unambiguous(reference.top)
    drifts = [
        min(abs(logprob - theirs[token]), cap) for token, logprob in mine.items()
        if token in theirs
    ]
    return sum(drifts) / len(drifts) if drifts else None


def _near_tie(claimed: TokenLogprob, reference: TokenLogprob, margin: float) -> bool:
    """Whether the node's token is one the reference nearly chose too."""
    best = max((alt.logprob for alt in reference.top), default=reference.logprob)
    mine = next((alt.logprob for alt in reference.top if alt.token == claimed.token), None)
    return mine is not None and best - mine <= margin


def check_tokens(
    claimed: Sequence[TokenLogprob], reference: Sequence[TokenLogprob],
    tolerances: PlausibilityTolerances,
) -> tuple[tuple[TokenCheck, ...], int | None]:
    """Per-token plausibility over the stretch where both runs emitted the same tokens."""
    checks: list[TokenCheck] = []
    diverged_at: int | None = None
    for index, (mine, theirs) in enumerate(zip(claimed, reference, strict=False)):
        if not _same_token(mine, theirs):
            diverged_at = index
            break
        drift = abs(mine.logprob - theirs.logprob)
        checks.append(TokenCheck(
            index=index, token=mine.token, claimed=mine.logprob, reference=theirs.logprob,
            top_drift=_top_drift(mine, theirs, tolerances.drift_cap),
            plausible=math.isfinite(drift) and drift <= tolerances.token_drift,
        ))
    return tuple(checks), diverged_at


def compare(
    claimed: Sequence[TokenLogprob], reference: Sequence[TokenLogprob],
    tolerances: PlausibilityTolerances, *, divergence_allowed: bool = False,
) -> Comparison:
    """Judge an answer's claimed logprobs against a genuine run's over the same tokens.

    ``reference`` is a re-scoring of exactly the claimed tokens (then the two never part ways
    but where tokenisation differs) or a stored greedy fingerprint (``divergence_allowed``: the
    answers may part at a near-tie of the reference, and the comparison stops there).
    """
    checks, diverged_at = check_tokens(claimed, reference, tolerances)
    cap = tolerances.drift_cap
    mean_drift = (
        sum(min(check.drift, cap) for check in checks) / len(checks) if checks else 0.0
    )
    tops = [check.top_drift for check in checks if check.top_drift is not None]
    top_drift = sum(tops) / len(tops) if tops else 0.0
    implausible = sum(not check.plausible for check in checks)

    def verdict(kind: Verdict, reason: str) -> Comparison:
        return Comparison(kind, checks, mean_drift, top_drift, implausible, diverged_at, reason)

    if diverged_at is not None and divergence_allowed:
        mine, theirs = claimed[diverged_at], reference[diverged_at]
        if not _near_tie(mine, theirs, tolerances.tie_margin):
            return verdict(
                "substituted",
                f"token {diverged_at} ({mine.token!r}) is no near-tie of the reference's",
            )
    if len(checks) < tolerances.min_tokens:
        return verdict("inconclusive", f"only {len(checks)} comparable tokens")
    if mean_drift > tolerances.mean_drift:
        return verdict("substituted", f"mean drift {mean_drift:.3f} > {tolerances.mean_drift}")
    if top_drift > tolerances.top_drift:
        return verdict("substituted", f"top-k drift {top_drift:.3f} > {tolerances.top_drift}")
    if implausible > tolerances.implausible_fraction * len(checks):
        return verdict("substituted", f"{implausible} of {len(checks)} tokens implausible")
    return verdict("genuine", f"mean drift {mean_drift:.3f}, top-k drift {top_drift:.3f}")
