"""Parts the suite needs from the machine. A missing part fails the test that needs it, naming
the part and how to get it: `make test` installs them all (scripts/setup_system.sh), so a missing
one is a broken set-up, never a reason to skip."""

from __future__ import annotations

import os
import platform
import shutil
import sys

import pytest

SETUP = "make test installs it (scripts/setup_system.sh)"


def tool(name: str, package: str) -> str:
    """The path of the program ``name``, or a failure naming the Debian package it comes from."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: it comes with the Debian package {package}; {SETUP}")
    return path


def file(path: str, package: str) -> str:
    """``path`` itself, or a failure naming the Debian package that installs it."""
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: it comes with the Debian package {package}; {SETUP}")
    return path


def service_url(variable: str, service: str) -> str:
    """The URL of a test server that `make test` starts, or a failure naming it."""
    url = os.environ.get(variable)
    if not url:
        pytest.fail(f"{service} is not running for the tests: {variable} is unset "
                    "(make test starts it with scripts/test_services.sh)")
    return url


def mlx_is_available() -> bool:
    """Whether MLX publishes a build for this platform (Apple Silicon, or Linux on the CPU)."""
    machine = platform.machine().lower()
    if sys.platform == "darwin":
        return machine == "arm64"
    return sys.platform == "linux" and machine in {"x86_64", "amd64", "aarch64", "arm64"}
