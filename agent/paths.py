"""Where the agent keeps its files: config, cache, state, logs, service files and its key."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs

APP_NAME = "koretex"
SERVICE_LABEL = "com.koretex.agent"  # the LaunchAgent's label
SYSTEMD_UNIT = "koretex-agent.service"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def config_file() -> Path:
    return config_dir() / "agent.toml"


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    return cache_dir() / "models"


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def key_file() -> Path:
    return config_dir() / "node.key"


def status_file() -> Path:
    return state_dir() / "status.json"


def bench_file() -> Path:
    return state_dir() / "bench.json"


def pid_file() -> Path:
    """The agent's pid when it runs detached (no service manager on this machine)."""
    return state_dir() / "agent.pid"


def log_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Logs" / "Koretex"
    return state_dir() / "logs"


def log_file() -> Path:
    return log_dir() / "agent.log"


def error_log_file() -> Path:
    return log_dir() / "agent.err.log"


def launch_agent_file() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{SERVICE_LABEL}.plist"


def systemd_unit_file() -> Path:
    # systemd looks in $XDG_CONFIG_HOME/systemd/user, which is what platformdirs answers on Linux.
    return Path(platformdirs.user_config_dir()) / "systemd" / "user" / SYSTEMD_UNIT
