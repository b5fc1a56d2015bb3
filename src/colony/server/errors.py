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
from starlette.exceptions import HTTPException as StarletteHTTPException

from colony.agent.loop import PromptTooLargeError
from colony.errors import ColonyError, ConfigError, ModelError, ModelUnavailableError, StoreError

__all__ = ["APIError", "ErrorBody", "install_error_handlers"]

log = logging.getLogger("colony.server")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
                 422: "invalid_request", 429: "rate_limited", 503: "unavailable"}


class APIError(Exception):
    """Raise from a route to answer with a JSON error."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status, self.code, self.message, self.extra = status, code, message, extra
        super().__init__(message)


def ErrorBody(code: str, message: str, status: int, **extra: Any) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> JSONResponse:
        return ErrorBody(exc.code, exc.message, exc.status, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()[:20]
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"]) or "request"
        return ErrorBody("invalid_request", f"{where}: {first['msg']}", 422, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return ErrorBody(code, str(exc.detail), exc.status_code)

    @app.exception_handler(ColonyError)
    async def _colony(request: Request, exc: ColonyError) -> JSONResponse:
        return ErrorBody(exc.code, str(exc), _colony_status(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ErrorBody("internal_error", "The node hit an unexpected error; it was logged.", 500)
