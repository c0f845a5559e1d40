"""The HTTP API as OpenAPI 3.1, generated from the pydantic models the handlers use.

    operations.py  ``Operation``: one route's method, path, auth, request and responses; and
                   ``OPERATIONS``, every operation of the coordinator's HTTP API
    spec.py        ``build_spec`` and the ``GET /openapi.json`` handler

A route joins the API by having an ``Operation`` in ``OPERATIONS`` (tests fail for a route in
``app.router`` without one: every ``/v1`` route, ``/healthz`` and ``/install.sh``, unless it is
listed in ``NOT_IN_SPEC``; pages, static files and browser redirects stay outside, see ``in_spec``).
"""

from coordinator.openapi.operations import NOT_IN_SPEC, OPERATIONS, Operation, in_spec
from coordinator.openapi.spec import build_spec, openapi_json

__all__ = ["NOT_IN_SPEC", "OPERATIONS", "Operation", "build_spec", "in_spec", "openapi_json"]
