"""``install.sh`` end to end on this machine: the one-line command from the account API installs
the agent from the working tree into a throwaway HOME, enrolls the node and serves a paid call;
running it again upgrades in place with the same identity; ``--uninstall`` leaves nothing.

llama.cpp is never compiled here: the test hands pip (through its own PIP_* variables, which
install.sh passes on) the llama-cpp-python wheel this test environment was installed from, out
of the venv's own pip cache (``make`` keeps the wheels it built there), pip's cache or
``~/.cache/koretex-wheels``, pins that version, and points pip at the real cache directory (the
throwaway HOME would otherwise give it an empty one).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shlex
import shutil
import socket
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select
from support.cluster import REPO, TIMEOUT_FACTOR, RunningCoordinator, start_coordinator, wait_for
from support.enrollment import mint, signed_in
from support.secret_scan import redact_secrets

from coordinator.store.models import Node
from protocol.auth import node_id_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

SOURCE_PARTS = ("agent", "protocol", "coordinator", "installer", "launchd", "install.sh",
                "setup.py", "MANIFEST.in", "pyproject.toml", "README.md")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def llama_wheel_dirs(version: str) -> list[str]:
    """Folders holding a llama-cpp-python wheel of ``version`` that pip can install from."""
    pattern = f"llama_cpp_python-{version}-*.whl"
    folders = {str(path.parent) for path in (REPO / ".venv" / "pip-cache").rglob(pattern)}
    wheels = Path.home() / ".cache" / "koretex-wheels"
    folders |= {str(path.parent) for path in wheels.glob(pattern)}
    listed = subprocess.run(  # pip matches its pattern on the project name, not the file's
        [sys.executable, "-m", "pip", "cache", "list", "--format=abspath", "llama_cpp_python"],
        capture_output=True, text=True, check=False,
    )
    folders |= {
        str(Path(line).parent) for line in listed.stdout.split()
        if fnmatch(Path(line).name, pattern)
    }
    return sorted(folders)


def source_tree(destination: Path) -> Path:
    """The working tree's package sources (links kept, as git checks them out)."""
    destination.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in SOURCE_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, destination / part, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(source, destination / part)
    return destination


def installer_env(
    home: Path, tmp_path: Path, version: str, wheel_dirs: list[str]
) -> dict[str, str]:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"llama-cpp-python=={version}\n")
    pip_cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"],
                               capture_output=True, text=True, check=True).stdout.strip()
    keep = {k: v for k, v in os.environ.items()
            if k.startswith(("PIP_", "LANG", "LC_", "SSL_", "REQUESTS_", "OPENBLAS"))}
    links = " ".join([*os.environ.get("PIP_FIND_LINKS", "").split(), *wheel_dirs])
    return {
        **keep,
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PIP_CACHE_DIR": pip_cache,
        "PIP_FIND_LINKS": links,
        "PIP_CONSTRAINT": str(constraints),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",  # the key goes to a file
        "KORETEX_SERVICE_MANAGER": "detached",  # never touch this machine's own systemd
        "KORETEX_BACKOFF_INITIAL_S": "0.2",
        "KORETEX_BACKOFF_MAX_S": "2",
        "KORETEX_INSTALL_WAIT_S": str(int(180 * TIMEOUT_FACTOR)),
    }


async def shell(command: str, env: dict[str, str], log: Path) -> tuple[int, str]:
    """Run ``command`` under sh without blocking the coordinator in this event loop."""
    with log.open("ab") as output:
        # The transcript is this test's own; the token in the command line is the user's to see.
        output.write(f"$ {redact_secrets(command)}\n".encode())
        output.flush()
        process = await asyncio.create_subprocess_exec(
            "sh", "-c", command, env=env, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT,
        )
        code = await asyncio.wait_for(process.wait(), 900 * TIMEOUT_FACTOR)
    return code, log.read_text(errors="replace")


def processes_under(home: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        command = " ".join(process.info["cmdline"] or [])
        if str(home) in command and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def koretex_files(home: Path) -> list[str]:
    return sorted(
        str(path.relative_to(home)) for path in home.rglob("*") if "koretex" in str(path).lower()
    )


async def operator_of(coordinator: RunningCoordinator, node_id: str) -> int | None:
    async with coordinator.services.database.session() as session:
        return await session.scalar(
            select(Node.operator_account_id).where(Node.node_id == node_id)
        )


async def test_install_sh_enrolls_serves_upgrades_and_uninstalls(
    tmp_path: Path, smollm2_path: Path
) -> None:
    version = importlib.metadata.version("llama_cpp_python")
    wheel_dirs = llama_wheel_dirs(version)
    if not wheel_dirs:
        pytest.fail(f"no llama-cpp-python {version} wheel in .venv/pip-cache: make test "
                    "installs the locked packages, which leaves the wheel it built there")
    coordinator = await start_coordinator(tmp_path / "coordinator", port=free_port())
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "install.log"
    try:
        account_id, session_token = await signed_in(coordinator)
        minted = await mint(coordinator, session_token)
        minted_token, command = minted["token"], minted["install_command"]
        assert command.startswith(f"curl -fsSL {coordinator.base_url}/install.sh | sh -s --")
        command += (f" --source {shlex.quote(str(source_tree(tmp_path / 'src')))}"
                    f" --model {shlex.quote(str(smollm2_path))}")
        env = installer_env(home, tmp_path, version, wheel_dirs)

        code, output = await shell(command, env, log)
        assert code == 0, output
        assert "this machine serves Koretex" in output
        key_file = home / ".config" / "koretex" / "node.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        node_id = node_id_of(_signing_key(key_file))
        hub = coordinator.services.hub
        await wait_for(lambda: hub.get(node_id) is not None, 60, "the node to register")  # type: ignore[arg-type]
        assert await operator_of(coordinator, node_id) == account_id
        first_pid = int((home / ".local" / "state" / "koretex" / "agent.pid").read_text())

        client = await coordinator.client()
        raw = await client.chat.completions.with_raw_response.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
        )
        assert raw.headers["x-koretex-node"] == node_id
        assert raw.parse().usage.completion_tokens > 0  # type: ignore[union-attr]

        venv_python = home / ".koretex" / "venv" / "bin" / "python"
        packaged = subprocess.run(
            [str(venv_python), "-c", "from installer import assets; print(assets.PACKAGE)"],
            capture_output=True, text=True, check=True, cwd=tmp_path,
        ).stdout.strip()
        assert Path(packaged).is_relative_to(home / ".koretex" / "venv")  # not the source tree
        for name in ("install.sh", "templates/koretex-agent.service",
                     "templates/com.koretex.agent.plist"):
            assert (Path(packaged) / name).is_file() and not (Path(packaged) / name).is_symlink()

        # Again: an in-place upgrade that keeps the key, restarts the agent and stays enrolled.
        before_upgrade = coordinator.services.clock.now()
        code, output = await shell(command, env, log)
        assert code == 0, output
        assert "upgrading the agent" in output
        assert node_id_of(_signing_key(key_file)) == node_id
        second_pid = int((home / ".local" / "state" / "koretex" / "agent.pid").read_text())
        assert second_pid != first_pid and not _alive(first_pid)
        await wait_for(lambda: (live := hub.get(node_id)) is not None  # type: ignore[arg-type]
                       and live.connected_at >= before_upgrade, 60, "the node to come back")
        assert await operator_of(coordinator, node_id) == account_id

        # A token the coordinator does not know: the agent is refused, and the installer says so.
        bogus = command.replace(minted_token, "kte-" + "x" * 43)
        code, output = await shell(bogus, env, log)
        assert code != 0
        assert "unknown enrollment token" in output and "the node could not start" in output
        await wait_for(lambda: processes_under(home) == [], 30, "the refused agent to exit")

        uninstall = f"curl -fsSL {coordinator.base_url}/install.sh | sh -s -- --uninstall"
        code, output = await shell(uninstall, env, log)
        assert code == 0, output
        assert not _alive(second_pid)
        assert processes_under(home) == []
        assert koretex_files(home) == []
        await wait_for(lambda: hub.get(node_id) is None, 30, "the node to leave")  # type: ignore[arg-type]
    finally:
        for process in processes_under(home):
            process.kill()
        await coordinator.stop()


def _signing_key(key_file: Path):  # type: ignore[no-untyped-def]
    import base58
    import nacl.signing

    return nacl.signing.SigningKey(base58.b58decode(key_file.read_text().strip()))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

