"""The wire vocabulary that the node agent and the coordinator both speak.

Pure data and pure functions only: no sockets, no files, no clocks of its own.
Neither program is imported from here, and each program imports only this from the other side.
"""

from __future__ import annotations

PROTOCOL_VERSION = 4
"""Bumped on any change a peer of the previous version could not understand."""

MIN_PROTOCOL_VERSION = 1
"""The oldest version a coordinator still accepts; features newer than a node's version are
never sent to it (version 2 added re-scoring: ``ScoreRequest`` / ``TokenScores``; version 3
``Job.fill_context``; version 4 the sampling extensions, JSON constraints, raw prompts and
tools)."""

SCORING_PROTOCOL_VERSION = 2
"""The first version whose nodes answer ``ScoreRequest``."""

FILL_CONTEXT_PROTOCOL_VERSION = 3
"""The first version whose nodes honour ``Job.fill_context`` (a max_tokens left to the context)."""

SAMPLING_PROTOCOL_VERSION = 4
"""The first version whose nodes honour ``SamplingParams``' penalties, top_k, min_p, logit_bias
and ``json_schema``, ``Job.raw_prompt``, ``Job.tools`` and tool turns: a job using any of them
is never sent to an older node."""

__all__ = [
    "FILL_CONTEXT_PROTOCOL_VERSION",
    "MIN_PROTOCOL_VERSION",
    "PROTOCOL_VERSION",
    "SAMPLING_PROTOCOL_VERSION",
    "SCORING_PROTOCOL_VERSION",
]
