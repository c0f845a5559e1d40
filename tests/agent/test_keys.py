"""The node key: created owner-only, reloaded, and refused when others can read it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.errors import ConfigurationError
from agent.keys import load_or_create
from protocol.auth import node_id_of


def test_the_file_store_creates_an_owner_only_key_and_reloads_it(tmp_path: Path) -> None:
    key_file = tmp_path / "config" / "node.key"
    created = load_or_create("file", key_file)
    assert created.stored_in == "file"
    assert created.location == str(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert created.node_id == node_id_of(created.signing_key)

    reloaded = load_or_create("file", key_file)
    assert bytes(reloaded.signing_key) == bytes(created.signing_key)
    assert reloaded.node_id == created.node_id


def test_each_new_key_file_holds_a_new_key(tmp_path: Path) -> None:
    first = load_or_create("file", tmp_path / "a.key")
    second = load_or_create("file", tmp_path / "b.key")
    assert first.node_id != second.node_id


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "node.key"
    load_or_create("file", key_file)
    key_file.chmod(mode)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create("file", key_file)


@pytest.mark.parametrize("content", ["", "not a key!", "3mJr7AoUXx2Wqd"])
def test_a_key_file_without_a_key_is_refused(tmp_path: Path, content: str) -> None:
    key_file = tmp_path / "node.key"
    key_file.write_text(content)
    key_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match="does not hold a node key"):
        load_or_create("file", key_file)


def test_auto_keeps_a_key_already_in_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "node.key"
    created = load_or_create("file", key_file)
    assert load_or_create("auto", key_file).node_id == created.node_id
