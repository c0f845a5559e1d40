"""Finding secrets in logs: every API key, session token and enrollment token has a prefix, and
every node private key minted in the run is a file under the test tmp dirs.

``tests/conftest.py`` installs :class:`LeakWatch` on the root logger for the whole session and,
at the end, scans every ``*.log`` file under the session's tmp dirs (coordinator and agent
subprocess logs) for the same patterns and for the contents of every ``*.key`` file there.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

# A full secret, not its shown prefix (the first 12 characters are shown on purpose).
SECRET_PATTERN = re.compile(r"\b(kt[xse])-[A-Za-z0-9_-]{30,}")


def redact(secret: str) -> str:
    return secret[:8] + "…"


def find_secrets(text: str, private_keys: frozenset[str] = frozenset()) -> list[str]:
    """Redacted mentions of secrets in ``text``."""
    found = [redact(match.group(0)) for match in SECRET_PATTERN.finditer(text)]
    found += [f"private key {redact(key)}" for key in private_keys if key in text]
    return found


def redact_secrets(text: str) -> str:
    """``text`` with every full secret cut to its shown prefix."""
    return SECRET_PATTERN.sub(lambda match: redact(match.group(0)), text)


# HTTP client libraries the tests drive log the headers they receive (a session's Set-Cookie)
# at DEBUG: those are the test client's records, not the coordinator's or the agent's.
CLIENT_LOGGERS = ("httpcore", "httpx")


class LeakWatch(logging.Handler):
    """Scans every record as it is emitted (message, arguments and traceback)."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_LOGGERS):
            return
        try:
            text = record.getMessage()
        except Exception:  # a broken format string must not hide the raw parts
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        for leak in find_secrets(text):
            self.leaks.append(f"{record.name}: {leak}")


def private_keys_under(root: Path) -> frozenset[str]:
    keys = set()
    for path in root.rglob("*.key"):
        try:
            text = path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) >= 32:
            keys.add(text)
    return frozenset(keys)


def leaks_in_files(root: Path) -> list[str]:
    """Secrets in every log file under ``root`` (the session's tmp dirs)."""
    keys = private_keys_under(root)
    leaks = []
    for path in root.rglob("*.log"):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        leaks += [f"{path.relative_to(root)}: {leak}" for leak in find_secrets(text, keys)]
    return leaks
