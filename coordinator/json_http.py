"""Reading a JSON request body into its pydantic model, and answering with one."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic
from aiohttp import web

from coordinator.errors import InvalidRequest

Body = TypeVar("Body", bound=pydantic.BaseModel)


def invalid_request(exc: pydantic.ValidationError, where: str) -> InvalidRequest:
    """The first validation error, as the OpenAI-shaped 400 naming its parameter: a refusal
    first (under a union, the other branches' mismatches say less)."""
    errors = exc.errors()
    first = next((e for e in errors if e["type"] == "unsupported_parameter"), errors[0])
    named = first.get("ctx", {}).get("param")  # a refusal that names its parameter itself
    param = named or ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"unrecognized request argument supplied: {param}", param=param)
    if param and first["type"] != "unsupported_parameter":  # a refusal names its own
        return InvalidRequest(f"invalid request {where}: {param}: {first['msg']}", param=param)
    return InvalidRequest(f"invalid request {where}: {first['msg']}", param=param)


async def read_body(request: web.Request, model: type[Body]) -> Body:
    """The request's JSON body as ``model``; a 400 naming the first bad field otherwise."""
    raw = await request.read()  # bounded by the app's client_max_size
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise invalid_request(exc, "body") from exc


def json_reply(model: pydantic.BaseModel, status: int = 200, **dump: Any) -> web.Response:
    """``model`` as the JSON response, by its wire aliases."""
    return web.Response(
        text=model.model_dump_json(by_alias=True, **dump), status=status,
        content_type="application/json",
    )
