"""The node's key file, its reconnection delays and the coordinator URL it dials."""

from __future__ import annotations

import random
import stat
from itertools import islice, pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.backoff import backoff
from agent.errors import ConfigurationError
from agent.keys import load_or_create
from agent.link import websocket_url
from protocol.auth import node_id_of

# --- keys --------------------------------------------------------------------------------------


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


# --- backoff -----------------------------------------------------------------------------------

FACTOR = 1.618


@settings(deadline=None)
@given(
    seed=st.integers(0, 2**32),
    initial_s=st.floats(0.01, 5.0),
    cap_ratio=st.floats(1.0, 100.0),
)
def test_delays_start_jittered_then_grow_to_the_cap(
    seed: int, initial_s: float, cap_ratio: float
) -> None:
    max_s = initial_s * cap_ratio
    delays = list(islice(backoff(initial_s, max_s, FACTOR, random.Random(seed)), 40))
    assert 0 <= delays[0] <= initial_s
    nominal = initial_s
    for before, after in pairwise(delays[1:]):
        assert 0.8 * min(nominal, max_s) <= before <= min(nominal, max_s)
        if nominal * FACTOR <= max_s:
            # Jitter (at most 20%) never undoes a 1.618x step, so growth is strict.
            assert after > before
        nominal *= FACTOR
    assert all(delay <= max_s for delay in delays)
    assert delays[-1] >= 0.8 * max_s


def test_the_first_retries_are_spread_over_the_initial_delay() -> None:
    rng = random.Random(7)
    firsts = [next(backoff(1.0, 30.0, rng=rng)) for _ in range(200)]
    assert min(firsts) < 0.1
    assert max(firsts) > 0.9


def test_the_same_seed_gives_the_same_delays() -> None:
    def run(seed: int) -> list[float]:
        return list(islice(backoff(0.5, 10.0, rng=random.Random(seed)), 12))

    assert run(3) == run(3)
    assert run(3) != run(4)


# --- websocket_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/nodes/connect"),
        ("https://koretex.example", "wss://koretex.example/v1/nodes/connect"),
        ("https://koretex.example/", "wss://koretex.example/v1/nodes/connect"),
        ("ws://127.0.0.1:9", "ws://127.0.0.1:9/v1/nodes/connect"),
        ("wss://koretex.example", "wss://koretex.example/v1/nodes/connect"),
        ("HTTPS://koretex.example", "wss://koretex.example/v1/nodes/connect"),
        ("https://example.com/koretex", "wss://example.com/koretex/v1/nodes/connect"),
        ("https://example.com/koretex/", "wss://example.com/koretex/v1/nodes/connect"),
        ("wss://koretex.example/v1/nodes/connect", "wss://koretex.example/v1/nodes/connect"),
        ("https://koretex.example/v1/nodes/connect/", "wss://koretex.example/v1/nodes/connect"),
        ("https://example.com/k/v1/nodes/connect", "wss://example.com/k/v1/nodes/connect"),
        ("https://koretex.example/?region=eu", "wss://koretex.example/v1/nodes/connect?region=eu"),
    ],
)
def test_coordinator_urls_become_the_node_endpoint(base: str, url: str) -> None:
    assert websocket_url(base) == url


@pytest.mark.parametrize(
    "base", ["ftp://koretex.example", "koretex.example", "localhost:8080", "", "file:///tmp/x"]
)
def test_other_schemes_are_refused(base: str) -> None:
    with pytest.raises(ValueError, match="unsupported coordinator URL"):
        websocket_url(base)


def test_auto_keeps_a_key_already_in_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "node.key"
    created = load_or_create("file", key_file)
    assert load_or_create("auto", key_file).node_id == created.node_id
