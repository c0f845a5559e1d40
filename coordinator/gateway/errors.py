"""The one place that turns failures into error responses: OpenAI's shape, and Anthropic's on
the Messages door."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from coordinator.errors import CoordinatorError, InvalidRequest, NotFound
from coordinator.gateway.anthropic_types import error_body as anthropic_error_body

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_OUTSIDE_V1: frozenset[str] = frozenset({"/healthz", "/install.sh"})
"""The API's paths outside ``/v1/``; every other path outside it is a page, a static file or a
browser redirect (the dashboard, ``/static``, ``/auth/oidc/...``)."""


def is_api_path(path: str) -> bool:
    """Whether ``path`` belongs to the HTTP API (OpenAI-shaped errors, described in the spec)
    rather than to the site (HTML pages, their errors, static files, browser redirects)."""
    return path.startswith("/v1/") or path in API_OUTSIDE_V1


ANTHROPIC_PATHS = "/v1/messages"


def error_response(
    error: CoordinatorError, headers: dict[str, str] | None = None, *, path: str = ""
) -> web.Response:
    headers = dict(headers or {})
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    body = error.body()
    if path.startswith(ANTHROPIC_PATHS):
        body = anthropic_error_body(error.status, error.message)
    return web.json_response(body, status=error.status, headers=headers)


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CoordinatorError as error:
        return error_response(error, path=request.path)
    except web.HTTPException as exc:
        if exc.status < 400 or not is_api_path(request.path):
            raise
        mapped: CoordinatorError
        kept = {}
        if exc.status == 404:
            mapped = NotFound(f"no route for {request.method} {request.path}")
        elif exc.status == 405:
            mapped = InvalidRequest(f"{request.method} is not allowed on {request.path}")
            mapped.status = 405
            kept["Allow"] = exc.headers.get("Allow", "")  # RFC 9110: a 405 names what is allowed
        else:
            mapped = InvalidRequest(exc.reason)
            mapped.status = exc.status
        return error_response(mapped, kept, path=request.path)
    except ConnectionError:  # the consumer hung up mid-answer: aiohttp drops it quietly
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(CoordinatorError("internal error"), path=request.path)
