"""The agent's settings: flags over ``KORETEX_*`` variables over the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent import paths

EngineChoice = Literal["auto", "llama.cpp", "mlx"]
KeyStore = Literal["auto", "keyring", "file"]
ServiceManagerChoice = Literal["auto", "launchd", "systemd", "detached"]


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KORETEX_", extra="ignore", frozen=True)

    coordinator: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("http://127.0.0.1:8420",),
        description="Coordinator base URLs (http, https, ws or wss); tried in turn.",
    )
    model: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="GGUF/MLX paths or catalogue names; several are served side by side.",
    )
    model_id: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="The catalogue ids the weights are, in --model's order (default: by sha256).",
    )
    engine: EngineChoice = "auto"
    slots: int = Field(default=1, ge=1, le=64, description="Jobs served at once.")
    context_length: int = Field(default=4096, ge=256)
    threads: int = Field(default=0, ge=0, description="Engine threads per slot (0: automatic).")
    memory_headroom_mb: int = Field(
        default=1024, ge=0,
        description="Memory left free for the system when checking that the models fit.",
    )
    key_store: KeyStore = "auto"
    key_file: Path = Field(default_factory=paths.key_file)
    enrollment_token: str | None = Field(
        default=None, description="One-time token that binds this node to your account."
    )
    drain_grace_s: float = Field(default=30.0, ge=0)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    status_interval_s: float = Field(
        default=2.0, gt=0, description="How often the daemon rewrites its status file."
    )
    service_manager: ServiceManagerChoice = Field(
        default="auto",
        description="What keeps the agent running: launchd, systemd (user), detached, or auto.",
    )

    @field_validator("coordinator", "model", "model_id", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=paths.config_file())
        return (init_settings, env_settings, toml)
