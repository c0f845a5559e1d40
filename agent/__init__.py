"""The Koretex node agent: serves open LLMs to the network from the operator's own machine."""

from __future__ import annotations

__version__ = "0.1.0"
