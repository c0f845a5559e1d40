"""Where the agent keeps its files: config, cache, logs and (without a keyring) its key."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs

APP_NAME = "koretex"


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


def log_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Logs" / "Koretex"
    return state_dir() / "logs"
