"""The config file, where each setting comes from, the status file and ``koretex status``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.cluster import REPO
from typer.testing import CliRunner

from agent.cli import app
from agent.config_file import read_config, render_toml, setting_sources, update_config
from agent.errors import ConfigurationError
from agent.status import BenchResult, NodeStatus, read_bench, read_status, write_status

# --- the config file ---------------------------------------------------------------------------

values = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True),
    st.one_of(
        st.text(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False), st.lists(st.text(), max_size=4),
    ),
    max_size=6,
)


@given(values)
def test_rendered_toml_reads_back_the_same(written: dict[str, object]) -> None:
    assert tomllib.loads(render_toml(written)) == written


def test_updating_the_config_merges_and_keeps_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "koretex" / "agent.toml"
    update_config(path, {"coordinator": ["https://a.example"], "slots": 2})
    update_config(path, {"model": "/models/x.gguf", "slots": 3})
    assert read_config(path) == {
        "coordinator": ["https://a.example"], "slots": 3, "model": "/models/x.gguf",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ConfigurationError, match="unknown settings: colour"):
        update_config(path, {"colour": "blue"})


def test_a_broken_config_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("slots = = 3")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        read_config(path)


def test_flags_beat_the_environment_which_beats_the_file() -> None:
    sources = setting_sources(
        flags={"slots": 4},
        environ={"KORETEX_SLOTS": "2", "koretex_engine": "llama.cpp", "HOME": "/x"},
        file_values={"slots": 1, "engine": "mlx", "model": "m.gguf"},
    )
    assert sources["slots"] == "flag"
    assert sources["engine"] == "env"  # environment names are case-insensitive
    assert sources["model"] == "file"
    assert sources["threads"] == "default"


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    runner = CliRunner()
    done = runner.invoke(app, list(args), env={
        "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state"),
        "COLUMNS": "200", **(env or {}),
    })
    return done.exit_code, done.output


def test_config_show_names_the_source_of_every_setting(tmp_path: Path) -> None:
    code, _ = cli(tmp_path, "config", "set", "--model", "/m/x.gguf", "--enrollment-token",
                  "kte-secret-token-value")
    assert code == 0
    code, output = cli(tmp_path, "config", "show", "--slots", "3",
                       env={"KORETEX_CONTEXT_LENGTH": "1024"})
    assert code == 0
    lines = {line.split("│")[1].strip(): line for line in output.splitlines() if "│" in line}
    assert "/m/x.gguf" in lines["model"] and "file" in lines["model"]
    assert "3" in lines["slots"] and "flag" in lines["slots"]
    assert "1024" in lines["context_length"] and "env" in lines["context_length"]
    assert "default" in lines["engine"]
    assert "kte-secret-token-value" not in output and "hidden" in lines["enrollment_token"]
    assert cli(tmp_path, "config", "get", "model") == (0, "/m/x.gguf\n")
    assert cli(tmp_path, "config", "get", "model_id") == (0, "\n")


# --- the status file and `koretex status` --------------------------------------------------------


def node_status(**changes: object) -> NodeStatus:
    now = datetime.now(UTC)
    status = NodeStatus(
        pid=os.getpid(), started_at=now, updated_at=now, state="connected",
        coordinator="https://koretex.example", node_id="NodeAbc123", key_store="keyring",
        key_location="koretex/node-signing-key", model="gemma-3-270m", model_path="/m/g.gguf",
        engine="llama.cpp", slots=2, slots_in_use=1, jobs_done=5, tokens_served=640,
        measured_tok_s=42.5, operator="WalletXyz", earned=1_234_500,
    )
    return status.model_copy(update=changes)


def test_the_status_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "state" / "status.json"
    write_status(path, node_status())
    write_status(path, node_status(jobs_done=6))
    current = read_status(path)
    assert current is not None and current.jobs_done == 6
    assert sorted(p.name for p in path.parent.iterdir()) == ["status.json"]  # no temporaries
    path.write_text("{half a fi")
    assert read_status(path) is None
    assert read_bench(tmp_path / "missing.json") is None


def write_node_status(tmp_path: Path, status: NodeStatus) -> None:
    write_status(tmp_path / "state" / "koretex" / "status.json", status)


def test_status_shows_the_running_node(tmp_path: Path) -> None:
    write_node_status(tmp_path, node_status())
    code, output = cli(tmp_path, "status")
    assert code == 0
    for expected in ("connected", "https://koretex.example", "NodeAbc123", "the OS keyring",
                     "WalletXyz", "gemma-3-270m", "llama.cpp", "1 of 2 in use", "5 jobs",
                     "640 tokens", "42.5 tok/s", "1.2345 credits"):
        assert expected in output


def test_status_says_when_earnings_are_not_reported(tmp_path: Path) -> None:
    write_node_status(tmp_path, node_status(earned=None, operator=None, key_store="file",
                                            key_location="/k/node.key"))
    code, output = cli(tmp_path, "status")
    assert code == 0
    assert "not reported by the coordinator" in output
    assert "not enrolled" in output
    assert "a private file: /k/node.key" in output


def test_status_of_a_refused_node_exits_78_with_the_reason(tmp_path: Path) -> None:
    write_node_status(tmp_path, node_status(state="refused", detail="token expired"))
    code, output = cli(tmp_path, "status")
    assert code == 78
    assert "refused" in output and "token expired" in output


def test_status_of_a_dead_or_absent_node_exits_1(tmp_path: Path) -> None:
    code, output = cli(tmp_path, "status")
    assert code == 1 and "not running" in output
    stale = datetime.now(UTC) - timedelta(minutes=5)
    write_node_status(tmp_path, node_status(updated_at=stale))
    code, output = cli(tmp_path, "status", "--json")
    assert code == 1
    assert '"running": false' in output


def test_status_shows_the_bench_of_the_same_model(tmp_path: Path) -> None:
    from agent.status import write_bench

    write_node_status(tmp_path, node_status())
    write_bench(tmp_path / "state" / "koretex" / "bench.json", BenchResult(
        model="gemma-3-270m", sha256="0" * 64, engine="llama.cpp", tok_s=55.25,
        time_to_first_token_s=0.1, measured_at=datetime.now(UTC),
    ))
    assert "bench 55.2 tok/s" in cli(tmp_path, "status")[1]


# --- `koretex bench` ------------------------------------------------------------------------------


def test_bench_measures_the_model_and_remembers_the_result(
    tmp_path: Path, gemma_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "bench", "--model", str(gemma_path), "--tokens", "12",
         "--runs", "2", "--context-length", "512"],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "tok/s" in done.stdout and "first token" in done.stdout
    result = read_bench(tmp_path / "koretex" / "bench.json")
    assert result is not None
    assert result.model == "gemma-3-270m" and result.engine == "llama.cpp"
    assert result.tok_s > 0


def test_a_node_that_cannot_start_leaves_the_reason_in_its_status(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "node", "run", "--model", str(tmp_path / "nowhere.gguf"),
         "--key-store", "file", "--key-file", str(tmp_path / "node.key")],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert done.returncode == 78
    assert "neither a file nor a catalogue model" in done.stderr
    current = read_status(tmp_path / "koretex" / "status.json")
    assert current is not None and current.state == "failed"
    assert current.detail is not None and "neither a file" in current.detail
    assert current.node_id != "" and current.key_store == "file"
    code, output = cli(tmp_path / "x", "status", env={"XDG_STATE_HOME": str(tmp_path)})
    assert code == 78 and "neither a file" in output
