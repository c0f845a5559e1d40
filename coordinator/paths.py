"""Where the coordinator keeps its files by default."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "koretex"


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{data_dir() / 'coordinator.db'}"
