"""Identifier types shared by both programs."""

from __future__ import annotations

from typing import NewType

NodeId = NewType("NodeId", str)
"""A node's ed25519 public key, base58-encoded as Solana addresses are."""

JobId = NewType("JobId", str)
"""A coordinator-issued id for one generation sent to one node."""

ModelId = NewType("ModelId", str)
"""A catalogue model id such as ``gemma-3-270m``."""
