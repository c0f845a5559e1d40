"""Before a cloud node is accepted: one real completion from its upstream, or a clear refusal."""

from __future__ import annotations

import json

import aiohttp

from coordinator.cloud.addresses import (
    PrivateAddressRefused,
    literal_host_is_private,
    upstream_connector,
)
from coordinator.cloud.upstream import chat_url, check_body, failure_for_status
from coordinator.errors import InvalidRequest
from coordinator.settings.cloud import CloudSettings

_HINTS = {
    401: " (the upstream refused the token)",
    403: " (the upstream refused the token)",
    404: " (check the base URL, which ends in /v1, and the upstream model name)",
}


async def check_upstream(
    base_url: str, token: str, upstream_model: str, settings: CloudSettings
) -> None:
    """Ask the upstream for a one-token completion; raises ``InvalidRequest`` if it does not
    give one. Messages name the status or the kind of failure, never the token."""
    timeout = aiohttp.ClientTimeout(
        total=settings.check_timeout_s, connect=settings.connect_timeout_s
    )
    if not settings.allow_private_upstreams and literal_host_is_private(base_url):
        raise InvalidRequest(
            "base_url must name a public address: this coordinator does not call private ones",
            param="base_url",
        )
    headers = {"Authorization": f"Bearer {token}"}
    connector = upstream_connector(1, settings.allow_private_upstreams)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http, http.post(
            chat_url(base_url), json=check_body(upstream_model), headers=headers,
            allow_redirects=False,  # a redirect could aim the coordinator anywhere: a refusal
        ) as response:
            raw = await response.content.read(65536)
            status = response.status
    except TimeoutError:
        raise _refused("did not answer within "
                       f"{settings.check_timeout_s:g} s") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, PrivateAddressRefused):
            raise InvalidRequest(
                "base_url must name a public address: its host resolves only to private ones",
                param="base_url",
            ) from None
        raise _refused(f"could not be reached ({type(exc).__name__})") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise _refused(f"could not be reached ({type(exc).__name__})") from None
    if status >= 300:
        _, message = failure_for_status(status, raw.decode("utf-8", errors="replace"), token)
        detail = f"answered HTTP {status}"
        if status in (400, 413, 422):
            detail += f" ({message})"
        raise _refused(detail + _HINTS.get(status, ""))
    try:
        reply = json.loads(raw)
        choices = reply["choices"]
        assert isinstance(choices, list) and choices and "message" in choices[0]
    except (ValueError, KeyError, TypeError, AssertionError, IndexError):
        raise _refused("answered without a chat completion") from None


def _refused(detail: str) -> InvalidRequest:
    return InvalidRequest(
        f"the upstream failed the test completion: it {detail}", param="base_url"
    )
