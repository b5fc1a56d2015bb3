"""The OpenAPI document: FastAPI's, plus what every operation can answer regardless of its route.

Routes declare their own errors (404, 409, 503 …) with `colony.server.errors.errors`. What holds
for whole classes of operations is added here, from the routes themselves, so it cannot drift:

- every operation behind `require_auth` declares the bearer scheme and its 401;
- every operation can answer 421 (the Host check runs before routing);
- an operation with parameters or a body answers 422 with the API's error body (FastAPI's own
  ``HTTPValidationError`` shape is never sent, so it is not declared);
- an operation with a body answers 400 (unreadable body) and 413 (too large).

The document is built once per app and cached, like FastAPI's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from colony.server.auth import require_auth
from colony.server.errors import ERROR_DESCRIPTIONS, ErrorOut

__all__ = ["install_openapi"]

_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def _requires_auth(dependant: Dependant | None, dependencies: Any) -> bool:
    declared = any(isinstance(d, params.Depends) and d.dependency is require_auth for d in dependencies or ())
    return declared or (dependant is not None and _depends_on_auth(dependant))


def _depends_on_auth(dependant: Dependant) -> bool:
    return any(d.call is require_auth or _depends_on_auth(d) for d in dependant.dependencies)


def _error(status: int) -> dict[str, Any]:
    return {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": _ERROR_REF}}}


def _uses(schema: Any, ref: str) -> bool:
    if isinstance(schema, dict):
        return schema.get("$ref") == ref or any(_uses(v, ref) for v in schema.values())
    if isinstance(schema, list):
        return any(_uses(v, ref) for v in schema)
    return False


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, openapi_version=app.openapi_version,
        description=app.description, routes=app.routes,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorOut"] = ErrorOut.model_json_schema()
    components["securitySchemes"] = {"bearerAuth": {
        "type": "http", "scheme": "bearer", "description": "The node token: `colony token` prints it.",
    }}
    # Included routers are resolved lazily by FastAPI; iterate the effective routes, as it does.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema or not route.path_format:
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            statuses = [421]
            if _requires_auth(getattr(route, "dependant", None), getattr(route, "dependencies", ())):
                operation["security"] = [{"bearerAuth": []}]
                statuses.append(401)
            has_body = "requestBody" in operation
            if operation.get("parameters") or has_body or "422" in responses:
                statuses.append(422)
            if has_body:
                statuses += [400, 413]
            for status in statuses:
                if str(status) not in responses or status == 422:
                    responses[str(status)] = _error(status)
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    dangling = [name for name in _FASTAPI_VALIDATION if _uses(schema, f"#/components/schemas/{name}")]
    if dangling:  # a route declared FastAPI's shape itself; keep what it refers to
        raise RuntimeError(f"the OpenAPI document still refers to {dangling}")
    return schema


def install_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """Make ``app.openapi()`` return the completed document (built on first use, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return openapi
