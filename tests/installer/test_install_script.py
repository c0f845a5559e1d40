"""``install.sh`` without installing anything: lint, options, and the checks that refuse early."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cluster import REPO

INSTALL_SH = REPO / "install.sh"


def test_install_sh_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck is not installed (apt-get install shellcheck)"
    done = subprocess.run([shellcheck, "install.sh"], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout


def run_installer(
    tmp_path: Path, *args: str, uname: tuple[str, str] | None = None, memory: int = 0,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run install.sh read from stdin as ``curl … | sh -s --`` does, in a throwaway HOME."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    path = os.environ["PATH"]
    if uname is not None:
        fake = tmp_path / "fake-bin"
        fake.mkdir(exist_ok=True)
        system, machine = uname
        (fake / "uname").write_text(
            f'#!/bin/sh\ncase "$1" in -m) echo {machine} ;; *) echo {system} ;; esac\n'
        )
        (fake / "sysctl").write_text(f"#!/bin/sh\necho {memory}\n")
        for tool in ("uname", "sysctl"):
            (fake / tool).chmod(0o755)
        path = f"{fake}:{path}"
    return subprocess.run(
        ["sh", "-s", "--", *args], input=INSTALL_SH.read_text(), capture_output=True, text=True,
        env={"PATH": path, "HOME": str(home), **(env or {})}, timeout=60, check=False,
    )


def test_help_lists_the_options(tmp_path: Path) -> None:
    done = run_installer(tmp_path, "--help")
    assert done.returncode == 0
    for option in ("--token", "--coordinator", "--model", "--source", "--uninstall"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frobnicate"], "unknown option --frobnicate"),
        (["--token"], "--token needs a value"),
        (["--coordinator", "http://x"], "--token is needed for a first install"),
        (["--token", "kte-x"], "--coordinator is needed for a first install"),
    ],
)
def test_bad_invocations_fail_with_the_reason(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = run_installer(tmp_path, *args)
    assert done.returncode != 0
    assert message in done.stderr
    assert not (tmp_path / "home" / ".koretex").exists()


@pytest.mark.parametrize(
    ("uname", "memory", "message"),
    [
        (("Darwin", "x86_64"), 32 << 30, "need Apple Silicon"),
        (("Darwin", "arm64"), 8 << 30, "need 16 GB of memory or more (this Mac has 8 GB)"),
        (("Linux", "riscv64"), 0, "need x86_64 or arm64"),
        (("FreeBSD", "amd64"), 0, "not on FreeBSD"),
    ],
)
def test_unsupported_machines_are_refused(
    tmp_path: Path, uname: tuple[str, str], memory: int, message: str
) -> None:
    done = run_installer(tmp_path, "--token", "kte-x", "--coordinator", "http://x",
                         uname=uname, memory=memory)
    assert done.returncode != 0
    assert message in done.stderr


def test_a_python_that_is_too_old_or_absent_is_refused(tmp_path: Path) -> None:
    done = run_installer(tmp_path, "--token", "kte-x", "--coordinator", "http://x",
                         env={"KORETEX_PYTHON": str(tmp_path / "no-python")})
    assert done.returncode != 0
    assert "is not a Python 3.11 or newer" in done.stderr


def test_uninstalling_what_was_never_installed_is_harmless(tmp_path: Path) -> None:
    done = run_installer(tmp_path, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert "uninstalled" in done.stdout
