"""The wire vocabulary that the node agent and the coordinator both speak.

Pure data and pure functions only: no sockets, no files, no clocks of its own.
Neither program is imported from here, and each program imports only this from the other side.
"""

from __future__ import annotations

PROTOCOL_VERSION = 2
"""Bumped on any change a peer of the previous version could not understand."""

MIN_PROTOCOL_VERSION = 1
"""The oldest version a coordinator still accepts; features newer than a node's version are
never sent to it (version 2 added re-scoring: ``ScoreRequest`` / ``TokenScores``)."""

SCORING_PROTOCOL_VERSION = 2
"""The first version whose nodes answer ``ScoreRequest``."""

__all__ = ["MIN_PROTOCOL_VERSION", "PROTOCOL_VERSION", "SCORING_PROTOCOL_VERSION"]
