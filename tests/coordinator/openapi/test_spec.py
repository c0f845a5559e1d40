"""The OpenAPI document covers every HTTP route the app serves, and is valid OpenAPI."""

from __future__ import annotations

import httpx
from support.cluster import RunningCoordinator

from coordinator.app import create_app
from coordinator.openapi import OPERATIONS, build_spec, in_spec
from coordinator.settings import CoordinatorSettings


def served_routes() -> set[tuple[str, str]]:
    app = create_app(CoordinatorSettings(database_url="sqlite+aiosqlite:///:memory:"))
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "OPTIONS") or not in_spec(path):
            continue
        routes.add((route.method, path))
    return routes


def test_every_route_is_in_the_spec_and_every_operation_is_served() -> None:
    described = {(op.method, op.path) for op in OPERATIONS}
    served = served_routes()
    assert served - described == set(), "routes without an Operation in coordinator/openapi"
    assert described - served == set(), "operations no route serves"


def test_every_operation_has_security_errors_and_schemas_that_resolve() -> None:
    spec = build_spec()
    schemas = spec["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert "default" in op["responses"], (method, path)
            if path.startswith("/v1/account") or path in ("/v1/chat/completions", "/v1/models"):
                assert op["security"], f"{method} {path} must declare its credentials"
                assert "401" in op["responses"]


async def test_the_spec_is_served(coordinator: RunningCoordinator) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == build_spec()


async def test_paths_outside_the_spec_are_pages_files_or_redirects(
    coordinator: RunningCoordinator,
) -> None:
    app = create_app(CoordinatorSettings(database_url="sqlite+aiosqlite:///:memory:"))
    outside = {
        route.resource.canonical for route in app.router.routes()
        if route.resource is not None and route.method == "GET"
        and not in_spec(route.resource.canonical) and route.resource.canonical != "/openapi.json"
        and not route.resource.canonical.startswith("/v1/")
    }
    assert {"/", "/dashboard", "/static", "/auth/oidc/start"} <= outside
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        for path in sorted(outside):
            url = "/static/app.css" if path == "/static" else path
            response = await http.get(url)
            assert response.status_code < 500, path
            assert not response.headers["content-type"].startswith("application/json"), path


async def test_a_wrong_method_names_the_allowed_ones_on_pages_and_api_paths(
    coordinator: RunningCoordinator,
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        page = await http.request("TRACE", "/models")
        health = await http.request("TRACE", "/healthz")
    assert page.status_code == health.status_code == 405
    assert "GET" in page.headers["allow"] and "GET" in health.headers["allow"]
    assert page.headers["content-type"].startswith("text/html")
    assert health.json()["error"]["type"]  # the API answers its errors in the OpenAI shape
