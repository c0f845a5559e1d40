"""Settings of the model-authenticity checks: tolerances, sampling rate, who is trusted.

The tolerance defaults come from ``koretex-coordinator models calibrate --model gemma-3-270m``
and ``bench/authenticity.py``, run on the real Gemma 3 270M (Q4_K_M) with llama.cpp on CPU.
Honest drift between a generating node and a re-scoring node (1 or 2 threads, batch 64–512,
n_ctx 1k–4k, temperatures 0–1) reached at most 0.170 nats mean on the emitted tokens, 0.131 mean
on the shared top-5 alternatives and 0.5 on a single token (232 honest pairs). Substitutes (Q4_0
and Q2_K re-quantizations, a tiny stand-in) drifted 0.096–2.5 on the emitted tokens, so that
mean alone does not separate a re-quantization, but never below 0.277 on the top-5. Hence
``top_drift`` 0.22 (about 1.7x the honest maximum, below every substitute) decides against
re-quantizations, and ``mean_drift`` 0.34 (2x the honest maximum) against stand-ins, leaving
honest nodes room for other hardware and engine builds; re-run both tools on new hardware.
``tests/coordinator/probes/test_calibration.py`` re-measures it on every test run: the worst
honest pair times 1.5 must stay inside ``mean_drift`` and ``top_drift``, the Q4_0 re-quantization
outside (on a 2-core AVX-512 machine: honest at most 0.08-0.11 mean and 0.09 top-k, greedy or
sampled at temperature 1; the substitute at least 0.27 mean and 0.39 top-k).

Trusted nodes are the verifiers of re-scoring where any are configured: a node is trusted when its
id is in ``trusted_nodes`` or the wallet it earns for (its operator) is in ``trusted_operators``.
The platform lists there only machines it runs or vouches for; every check of a node is scored by
a trusted node other than the node checked. Where none are (the default), a peer verifies: a node
of another operator that passed its exam for the model and holds full trust
(:mod:`coordinator.probes.rescoring`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlausibilityTolerances(BaseModel):
    """How far a node's claimed logprobs may stray from a genuine run's before it is flagged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token_drift: float = Field(
        default=0.9, gt=0,
        description="A token whose claimed logprob differs from the reference by more than this"
        " (nats) is implausible.",
    )
    mean_drift: float = Field(
        default=0.34, gt=0,
        description="Largest mean |claimed - reference| logprob of the emitted tokens (nats).",
    )
    top_drift: float = Field(
        default=0.22, gt=0,
        description="Largest mean |claimed - reference| logprob over the top-k alternatives both"
        " runs list (nats).",
    )
    implausible_fraction: float = Field(
        default=0.1, ge=0, le=1,
        description="Largest share of implausible tokens an answer may hold.",
    )
    min_tokens: int = Field(
        default=8, ge=1, description="Fewer comparable tokens than this decide nothing."
    )
    drift_cap: float = Field(
        default=5.0, gt=0, description="One token counts at most this much in a mean (nats)."
    )
    tie_margin: float = Field(
        default=0.5, ge=0,
        description="Greedy answers may part ways where the reference's best two tokens lie"
        " within this many nats (a near-tie honest drift can flip).",
    )


class AuthenticitySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tolerances: PlausibilityTolerances = Field(default_factory=PlausibilityTolerances)
    rescore_rate: float = Field(
        default=0.05, ge=0, le=1,
        description="Share of completed jobs (paid and probes) re-scored by a verifier (a trusted"
        " node where any are configured, else another operator's fully trusted node).",
    )
    rescore_queue: int = Field(
        default=64, ge=1, description="Jobs waiting for re-scoring; more are dropped, not held."
    )
    rescore_max_tokens: int = Field(
        default=256, ge=1, le=2048,
        description="Re-scoring checks the answer's first tokens only: enough for the statistic,"
        " and the verifier's reply stays well inside one websocket frame.",
    )
    rescore_timeout_s: float = Field(default=60.0, gt=0)
    rescore_probation_jobs: int = Field(
        default=20, ge=0,
        description="A node's first paid answers (per identity, on this replica) are all"
        " re-scored: a cheat behaving for its exam is disputed before it has served much.",
    )
    peer_corroboration: int = Field(
        default=2, ge=2,
        description="Peers of this many different operators disputing a node's paid answers"
        " within peer_dispute_window_s make a fake verdict (one peer's word blames nobody).",
    )
    peer_dispute_window_s: float = Field(default=86_400.0, gt=0)
    trusted_nodes: tuple[str, ...] = Field(
        default=(), description="Node ids the platform vouches for as re-scoring verifiers."
    )
    trusted_operators: tuple[str, ...] = Field(
        default=(), description="Operator wallets whose every node is a trusted verifier."
    )
    fingerprint_share: float = Field(
        default=0.2, ge=0, le=1,
        description="Share of the probes asked of the fingerprint source that it answers.",
    )
    exam_checks: int = Field(
        default=3, ge=0,
        description="Genuine fingerprint verdicts a node needs, per model and connection, before"
        " it takes paid jobs for a model that has a fingerprint (the admission exam); the first"
        " fake verdict holds it back until it passes again. 0: no exam.",
    )
