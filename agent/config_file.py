"""The agent's config file (``agent.toml``): reading it, merging values into it, and telling
where each effective setting came from (a flag, the environment, the file or the default)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.errors import ConfigurationError
from agent.settings import AgentSettings
from agent.status import write_atomically

Source = Literal["flag", "env", "file", "default"]
ENV_PREFIX = "KORETEX_"
SECRET_SETTINGS = frozenset({"enrollment_token"})


@dataclass(frozen=True, slots=True)
class EffectiveSetting:
    name: str
    value: object
    source: Source
    description: str | None


def read_config(path: Path) -> dict[str, object]:
    """The file's values; an absent file is empty, a broken one is the operator's to fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from exc


def render_toml(values: Mapping[str, object]) -> str:
    """Flat ``key = value`` TOML for the values settings take (text, numbers, flags, lists)."""
    lines = ["# Koretex node agent settings; `koretex config show` lists every one.\n"]
    for key, value in values.items():
        lines.append(f"{key} = {_toml_value(value)}\n")
    return "".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        # JSON's escapes are TOML's, once DEL (which TOML wants escaped) is escaped too.
        return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to the config file")


def update_config(path: Path, changes: Mapping[str, object]) -> dict[str, object]:
    """Merge ``changes`` into the file (owner-only: it may hold an enrollment token)."""
    unknown = sorted(set(changes) - set(AgentSettings.model_fields))
    if unknown:
        raise ConfigurationError(f"unknown settings: {', '.join(unknown)}")
    values = {**read_config(path), **changes}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, render_toml(values))
    os.chmod(path, 0o600)
    return values


def setting_sources(
    flags: Mapping[str, object], environ: Mapping[str, str], file_values: Mapping[str, object]
) -> dict[str, Source]:
    """Where each setting's value comes from, in the order the settings object applies them."""
    env_names = {name.lower() for name in environ}
    sources: dict[str, Source] = {}
    for name in AgentSettings.model_fields:
        if flags.get(name) is not None:
            sources[name] = "flag"
        elif (ENV_PREFIX + name).lower() in env_names:
            sources[name] = "env"
        elif name in file_values:
            sources[name] = "file"
        else:
            sources[name] = "default"
    return sources


def effective_settings(
    flags: Mapping[str, object], environ: Mapping[str, str], path: Path
) -> list[EffectiveSetting]:
    """Every setting with its effective value and where that value came from."""
    given = {name: value for name, value in flags.items() if value is not None}
    settings = AgentSettings(**given)  # type: ignore[arg-type]
    sources = setting_sources(given, environ, read_config(path))
    return [
        EffectiveSetting(name, getattr(settings, name), sources[name], field.description)
        for name, field in AgentSettings.model_fields.items()
    ]
