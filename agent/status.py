"""The node's status file: what the daemon is doing, for ``koretex status`` and the installer.

The daemon rewrites it every few seconds and on every change of state, atomically (a temporary
file in the same directory, then a rename), so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError

State = Literal[
    "loading",  # the engine is loading the weights
    "connecting",  # dialling the coordinator
    "connected",  # registered: taking jobs
    "waiting",  # link lost: waiting before the next attempt
    "draining",  # stopping: finishing the jobs in flight, taking no new ones
    "refused",  # the coordinator refused this node for good (see detail)
    "failed",  # the daemon could not start (see detail)
    "stopped",  # the daemon exited cleanly
]
LIVE_STATES = frozenset({"loading", "connecting", "connected", "waiting", "draining"})
MICRO = 1_000_000
"""Micro-credits in one credit."""


class NodeStatus(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    pid: int
    started_at: datetime
    updated_at: datetime
    state: State
    detail: str | None = None
    coordinator: str | None = Field(
        default=None, description="The coordinator connected to, else the first configured."
    )
    node_id: str = ""  # blank when the daemon failed before it knew (see detail)
    key_store: str = ""
    key_location: str = ""
    model: str = ""
    model_path: str = ""
    engine: str = ""
    slots: int = 0
    slots_in_use: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    tokens_served: int = 0
    measured_tok_s: float | None = Field(
        default=None, description="Generation speed measured on this node's own jobs."
    )
    operator: str | None = Field(default=None, description="Whom the node earns for.")
    earned: int | None = Field(
        default=None, description="Micro-credits earned, as the coordinator last said."
    )


class BenchResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str
    sha256: str
    engine: str
    tok_s: float
    time_to_first_token_s: float
    measured_at: datetime


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_status(path: Path, status: NodeStatus) -> None:
    write_atomically(path, status.model_dump_json(indent=2) + "\n")


def read_status(path: Path) -> NodeStatus | None:
    try:
        return NodeStatus.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None


def write_bench(path: Path, result: BenchResult) -> None:
    write_atomically(path, result.model_dump_json(indent=2) + "\n")


def read_bench(path: Path) -> BenchResult | None:
    try:
        return BenchResult.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None


def is_running(status: NodeStatus, now: datetime, stale_after: timedelta) -> bool:
    """Whether the daemon that wrote ``status`` is still alive and writing."""
    if status.state not in LIVE_STATES:
        return False
    if now - status.updated_at > stale_after:
        return False
    return bool(psutil.pid_exists(status.pid))


def credits(micro: int) -> str:
    return f"{micro / MICRO:,.6f}".rstrip("0").rstrip(".")
