"""The trusted run that computes a fingerprint, for ``koretex-coordinator models fingerprint``.

Only the node's own engine on the exact catalogue weights gives the figures a genuine node
produces, so the run is the agent's reference command (:mod:`coordinator.reference_runs`): an
offline admin tool run by the platform on a machine it trusts, never the serving coordinator.
The prompts are drawn here and sent with the request.
"""

from __future__ import annotations

from pathlib import Path

from coordinator.reference_runs import run_reference
from protocol.catalogue import CatalogueModel
from protocol.fingerprint import FINGERPRINT_MAX_TOKENS, Fingerprint
from protocol.reference import FingerprintRun


async def compute_fingerprint(
    model: CatalogueModel, weights: Path | None, prompts: tuple[str, ...], *,
    top_logprobs: int = 5, threads: int = 0, max_tokens: int = FINGERPRINT_MAX_TOKENS,
    check_sha256: bool = True,
) -> Fingerprint:
    """Greedy answers of ``weights`` (``None``: the models directory's copy of ``model``) to
    ``prompts`` (drawn from a secret:
    :func:`coordinator.probes.fingerprint_prompts.fingerprint_prompts`), with top-k logprobs.
    Raises :class:`protocol.fingerprint.FingerprintMismatch` for weights not the model's."""
    return await run_reference(FingerprintRun(
        model=model, weights=None if weights is None else str(weights), prompts=prompts,
        top_logprobs=top_logprobs, max_tokens=max_tokens, threads=threads,
        check_sha256=check_sha256,
    ), Fingerprint)
