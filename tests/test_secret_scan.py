"""The log scan that guards the whole suite (installed by tests/conftest.py) catches secrets."""

from __future__ import annotations

import logging
from pathlib import Path

from support.secret_scan import LeakWatch, find_secrets, leaks_in_files

from coordinator.accounts.api_keys import mint_key


def test_full_secrets_are_found_and_shown_prefixes_are_not() -> None:
    secret = mint_key().secret
    assert find_secrets(f"key {secret} used") == [secret[:8] + "…"]
    assert find_secrets(f"key {secret[:12]}… used") == []
    assert find_secrets("kts-" + "a" * 43) and find_secrets("kte-" + "B" * 43)


def test_the_handler_sees_arguments_and_exceptions() -> None:
    watch = LeakWatch()
    log = logging.getLogger("secret-scan-selftest")
    log.addHandler(watch)
    log.propagate = False  # keep the planted secrets away from the session-wide watch
    try:
        secret = mint_key().secret
        log.warning("refused %s", secret)
        try:
            raise ValueError(secret)
        except ValueError:
            log.exception("boom")
    finally:
        log.removeHandler(watch)
    assert len(watch.leaks) == 2


def test_subprocess_logs_and_private_keys_are_scanned(tmp_path: Path) -> None:
    scan_root = tmp_path / "planted"
    (scan_root / "agent").mkdir(parents=True)
    key = "5" * 44
    (scan_root / "agent" / "node.key").write_text(key)
    (scan_root / "agent" / "agent.log").write_text(f"loaded {key}\n")
    assert leaks_in_files(scan_root) == [f"agent/agent.log: private key {key[:8]}…"]
    (scan_root / "agent" / "agent.log").write_text("clean\n")  # the session scan sees it clean
    assert leaks_in_files(scan_root) == []
