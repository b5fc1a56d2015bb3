"""Every error the API returns is JSON: ``{"code": "<stable>", "message": "<how to fix>"}``.

`APIError` is raised by routes; the handlers here map validation errors, Starlette's HTTP
errors, Colony's own exception tree and anything unexpected onto that one shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from colony.agent.loop import PromptTooLargeError
from colony.errors import ColonyError, ConfigError, ModelError, ModelUnavailableError, StoreError

__all__ = [
    "NOT_BLANK", "APIError", "ErrorBody", "ErrorOut", "allowed_methods", "describe_error", "errors", "install_error_handlers",
]

log = logging.getLogger("colony.server")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
                 421: "unknown_host", 422: "invalid_request", 429: "rate_limited", 503: "unavailable"}


class ErrorOut(BaseModel):
    """The body of every error the API answers (the OpenAPI document declares it for each status)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="A stable identifier of what went wrong, e.g. `not_found`.")
    message: str = Field(description="What went wrong and how to fix it, for a person.")


class APIError(Exception):
    """Raise from a route to answer with a JSON error."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status, self.code, self.message, self.extra = status, code, message, extra
        super().__init__(message)


def ErrorBody(code: str, message: str, status: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


#: What each error status means on this API, for the OpenAPI document.
ERROR_DESCRIPTIONS = {
    400: "The body could not be read (not UTF-8 or not JSON).",
    401: "No valid bearer token (or login cookie).",
    403: "A cookie-authenticated request without the right X-CSRF-Token header.",
    404: "No such resource.",
    409: "The resource is not in a state that allows this.",
    413: "The request body is over the node's limit (or the prompt is over the model's).",
    421: "The Host header is not one of the node's names (DNS rebinding protection).",
    422: "The request does not match this operation's schema.",
    502: "Something the node called (a cartridge, the model during a paid turn) failed; a paid call is not "
         "charged.",
    503: "No model is reachable, or the node is not configured for this.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status answered with the `ErrorOut` body."""
    return {status: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    # Included routers are resolved lazily by FastAPI; walk the effective routes, as it does.
    for route in iter_route_contexts(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= set(route.methods)
    return sorted(methods)


def _colony_status(exc: ColonyError) -> int:
    if isinstance(exc, PromptTooLargeError):
        return 413
    if isinstance(exc, ModelUnavailableError | ConfigError):
        return 503
    if isinstance(exc, ModelError):
        return 502
    if isinstance(exc, StoreError):
        return 500
    return 400


#: The schema's way of saying "not blank" (a non-space character somewhere), and how to say it to a person.
NOT_BLANK = r"\S"


def describe_error(error: Any) -> str:
    """A validation error's message for a person (the schema's "not blank" pattern said in words)."""
    ctx = error.get("ctx") or {}
    if error.get("type") == "string_pattern_mismatch" and ctx.get("pattern") == NOT_BLANK:
        return "must not be blank"
    return str(error.get("msg", ""))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> JSONResponse:
        return ErrorBody(exc.code, exc.message, exc.status, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": describe_error(e), "type": str(e.get("type", ""))}
            for e in exc.errors()[:20]
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"]) or "request"
        return ErrorBody("invalid_request", f"{where}: {first['msg']}", 422, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":  # Starlette's: no route matched
            message = f"Nothing at {request.url.path}; the API's operations are listed at /openapi.json."
        if exc.status_code == 405:
            # Starlette names only the methods of the one route it matched (and FastAPI's lazily
            # included routers none); a path served by several routes (GET and DELETE of one
            # resource) must list them all (RFC 9110).
            methods = allowed_methods(request)
            headers["Allow"] = ", ".join(methods)
            message = f"{request.method} is not allowed here; use {' or '.join(methods)}."
        response = ErrorBody(code, message, exc.status_code)
        response.headers.update(headers)
        return response

    @app.exception_handler(ColonyError)
    async def _colony(request: Request, exc: ColonyError) -> JSONResponse:
        return ErrorBody(exc.code, str(exc), _colony_status(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ErrorBody("internal_error", "The node hit an unexpected error; it was logged.", 500)
