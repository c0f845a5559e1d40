"""Bodies of the cloud-node API. The upstream token goes in; only its last four characters
ever come out."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from coordinator.accounts.schemas import Reply, RequestBody


def clean_base_url(value: str) -> str:
    """An http(s) base URL without credentials, query or fragment, and no trailing slash."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http:// or https:// URL such as https://host/v1")
    if parts.username or parts.password:
        raise ValueError("base_url must not carry credentials: put the token in `token`")
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query or a fragment")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueError("base_url has a malformed port") from None
    return value.strip().rstrip("/")


class CreateCloudNode(RequestBody):
    base_url: str = Field(
        max_length=2000,
        description="The upstream's OpenAI base URL (ending in /v1, as clients are given).",
    )
    token: SecretStr = Field(
        description="The upstream's API token; stored sealed, never shown again."
    )
    model: str = Field(max_length=64, description="The catalogue model the upstream serves.")
    upstream_model: str = Field(
        min_length=1, max_length=200, description="The upstream's own name for that model."
    )
    concurrency: int = Field(ge=1, le=256, description="Jobs the upstream may run at once.")
    resume: bool = Field(
        default=False,
        description="Whether the upstream continues a trailing assistant message (vLLM's"
        " continue_final_message), so it can take over an answer another node started.",
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return clean_base_url(value)

    @field_validator("token")
    @classmethod
    def _token_present(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not secret or len(secret) > 4096 or any(c.isspace() for c in secret):
            raise ValueError("token must be 1 to 4096 characters without spaces")
        return value


class UpdateCloudNode(RequestBody):
    base_url: str | None = Field(default=None, max_length=2000)
    token: SecretStr | None = None
    model: str | None = Field(default=None, max_length=64)
    upstream_model: str | None = Field(default=None, min_length=1, max_length=200)
    concurrency: int | None = Field(default=None, ge=1, le=256)
    resume: bool | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else clean_base_url(value)

    @field_validator("token")
    @classmethod
    def _token_present(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            CreateCloudNode._token_present(value)
        return value


class CloudNodeView(Reply):
    id: str
    model: str
    upstream_model: str
    base_url: str
    concurrency: int
    resume: bool
    token_last4: str = Field(description="The last four characters of the upstream token.")
    online: bool
    created_at: datetime
    updated_at: datetime


class CloudNodeList(Reply):
    data: list[CloudNodeView]
