"""Building the OpenAPI document from ``OPERATIONS`` and serving it at ``/openapi.json``."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from coordinator.accounts.cookies import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from coordinator.gateway.openai_types import ErrorBody
from coordinator.openapi.operations import OPERATIONS, Body, Operation

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "api_key": {
        "type": "http", "scheme": "bearer",
        "description": "An API key (`ktx-…`) from `POST /v1/account/keys`.",
    },
    "session": {
        "type": "http", "scheme": "bearer",
        "description": "A session token (`kts-…`) from Sign-In With Solana; never an API key.",
    },
    "session_cookie": {
        "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
        "description": "The browser's session: the HttpOnly cookie sign-in sets. A request with"
        " an Authorization header is judged by that header alone.",
    },
    "csrf": {
        "type": "apiKey", "in": "header", "name": CSRF_HEADER,
        "description": f"With the session cookie on every method but GET, HEAD and OPTIONS: the"
        f" value of the `{CSRF_COOKIE}` cookie (double submit).",
    },
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 1},
}


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ErrorBody, "serialization"): None
    }
    for op in operations:
        wanted[(op.error_body, "serialization")] = None
        if op.request is not None:
            wanted[(op.request, "validation")] = None
        if op.query is not None:
            wanted[(op.query, "validation")] = None
        for response in op.responses.values():
            if isinstance(response, type):
                wanted[(response, "serialization")] = None
    return list(wanted)


SSE_EVENT: dict[str, Any] = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"},
                   "id": {"type": "string"}, "retry": {"type": "integer"}},
}
"""One server-sent event (OpenAPI 3.1 gives a ``text/event-stream`` schema per event)."""


def _content(response: type[BaseModel] | Body, refs: dict[Any, Any]) -> dict[str, Any]:
    if isinstance(response, Body):
        if response.media_type == "text/event-stream":  # the schema of each event, as parsed
            return {response.media_type: {"schema": SSE_EVENT}}
        return {response.media_type: {"schema": {"type": "string"}}}
    return {"application/json": {"schema": refs[(response, "serialization")]}}


def _parameters(op: Operation, query_schemas: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "description": text,
         "schema": {"type": "string"}}
        for name, text in op.path_params.items()
    ]
    if op.query is not None:
        schema = query_schemas[op.query.__name__]
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required,
                           "schema": prop})
    return params


def _security(op: Operation) -> list[dict[str, list[str]]]:
    """The credentials ``op`` takes; any one entry of the list suffices."""
    if op.auth is None:
        return []
    if op.auth == "api_key":
        return [{"api_key": []}]
    cookie: dict[str, list[str]] = {"session_cookie": []}
    if op.method not in SAFE_METHODS:
        cookie["csrf"] = []
    return [{"session": []}, cookie]


def _operation(op: Operation, refs: dict[Any, Any], queries: dict[str, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": refs[(op.error_body, "serialization")]}}
    responses: dict[str, Any] = {}
    for status, response in op.responses.items():
        entry: dict[str, Any] = {"description": "success"}
        if response is not None:
            entry["content"] = _content(response, refs)
            if status in op.also:
                entry["content"].update(_content(op.also[status], refs))
        responses[str(status)] = entry
    if op.auth is not None:
        responses["401"] = {"description": "missing, invalid or revoked credentials",
                            "content": error}
    if op.auth == "session" and op.method not in SAFE_METHODS:
        responses["403"] = {"description": f"the session cookie came without the {CSRF_HEADER}"
                            " header", "content": error}
    for status, text in op.errors.items():
        if str(status) in responses:
            text = f"{responses[str(status)]['description']}; or {text}"
        responses[str(status)] = {"description": text, "content": error}
    if op.rate_limited:
        responses["429"] = {"description": "over a limit", "content": error,
                            "headers": {"Retry-After": RETRY_AFTER}}
    shape = "the OpenAI" if op.error_body is ErrorBody else "Anthropic's"
    responses["default"] = {"description": f"an error, in {shape} error shape",
                            "content": error}
    body: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_')}"
        .replace("{", "").replace("}", "").replace(".", "_") or "root",
        "tags": list(op.tags),
        "responses": responses,
        "security": _security(op),
    }
    parameters = _parameters(op, queries)
    if parameters:
        body["parameters"] = parameters
    if op.request is not None:
        body["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": refs[(op.request, "validation")]}
        }}
    return body


def build_spec(operations: Iterable[Operation] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``operations``; schemas come from their pydantic models."""
    operations = tuple(operations)
    refs, definitions = models_json_schema(_models(operations), by_alias=True, ref_template=REF)
    components = dict(definitions.get("$defs", {}))
    queries = {
        op.query.__name__: op.query.model_json_schema(ref_template=REF)
        for op in operations if op.query is not None
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, queries)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Koretex coordinator", "version": "1"},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


@functools.cache
def _spec_text() -> str:
    return json.dumps(build_spec())


async def openapi_json(request: web.Request) -> web.Response:
    """``GET /openapi.json``."""
    return web.Response(text=_spec_text(), content_type="application/json")
