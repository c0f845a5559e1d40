"""The wire vocabulary that the node agent and the coordinator both speak.

Pure data and pure functions only: no sockets, no files, no clocks of its own.
Neither program is imported from here, and each program imports only this from the other side.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
"""Bumped on any change a peer of the previous version could not understand."""

__all__ = ["PROTOCOL_VERSION"]
