"""The service files, rendered from their templates: paths and numbers in, text out."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from installer.assets import launchd_plist_template, systemd_unit_template

LAUNCHD_LABEL = "com.koretex.agent"
AGENT_ARGS = ("node", "run")
STOP_MARGIN_S = 15
"""How much longer than the drain grace a service manager waits before it kills the agent."""


def stop_timeout_s(drain_grace_s: float) -> int:
    """Seconds a service manager should wait after SIGTERM: the drain grace and a margin."""
    return math.ceil(drain_grace_s) + STOP_MARGIN_S


def render_plist(
    koretex: Path, log_dir: Path, *, drain_grace_s: float, label: str = LAUNCHD_LABEL,
    throttle_interval_s: int = 30,
) -> str:
    """The LaunchAgent plist that runs ``koretex node run`` at login and keeps it running."""
    return _fill(launchd_plist_template(), {
        "LABEL": escape(label),
        "KORETEX": escape(str(koretex)),
        "LOG_DIR": escape(str(log_dir)),
        "THROTTLE_INTERVAL": str(throttle_interval_s),
        "EXIT_TIMEOUT": str(stop_timeout_s(drain_grace_s)),
    })


def render_systemd_unit(
    koretex: Path, *, drain_grace_s: float, restart_sec: int = 5
) -> str:
    """The systemd user unit that runs ``koretex node run`` and restarts it if it dies."""
    return _fill(systemd_unit_template(), {
        "EXEC_START": systemd_command_line([str(koretex), *AGENT_ARGS]),
        "RESTART_SEC": str(restart_sec),
        "TIMEOUT_STOP_SEC": str(stop_timeout_s(drain_grace_s)),
    })


def systemd_command_line(argv: Sequence[str]) -> str:
    """``argv`` as systemd parses ``ExecStart=``: quoted words, ``%`` doubled everywhere and
    ``$`` in the arguments (systemd expands variables there, never in the program's path)."""
    words = []
    for index, word in enumerate(argv):
        word = word.replace("%", "%%")
        if index > 0:
            word = word.replace("$", "$$")
        if not word or re.search(r'[\s"\'\\;]', word):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(word)
    return " ".join(words)


def _fill(template: str, values: Mapping[str, str]) -> str:
    text = template
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    leftover = re.search(r"@[A-Z_]+@", text)
    if leftover:
        raise ValueError(f"template placeholder {leftover.group()} has no value")
    return text
