"""HTTP observability: request ids, per-route metrics, a span and an access-log line per request.

`ObservabilityMiddleware` is plain ASGI, not Starlette's ``BaseHTTPMiddleware``: that one runs
the endpoint in a separate task and pipes the body through a memory stream, which would hold
up server-sent events and detach the request's context. Here every ``send`` passes straight
through; only ``http.response.start`` is touched, to echo the request id.

Route labels are the matched route's template (``/api/v1/turns/{turn_id}/events``), read from
``scope["route"]`` after routing, so the label set stays bounded however many turns there are;
a request no route matched is counted under ``unmatched``. The access-log line names method,
route, status, duration and request id — never the raw path's query, headers or cookies.

Wiring (done by `colony.server.app`): add the middleware outermost, include `metrics_router`,
``app.state.sse_hook = sse_hook`` and `install_node_collectors` for the lifetime of the app.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Response

from colony.observability.logs import bind_request_id, get_logger, new_request_id, reset_request_id
from colony.observability.metrics import (
    observe_http_request,
    register_circuit_source,
    render_latest,
    sse_stream_closed,
    sse_stream_opened,
)
from colony.observability.tracing import mark_failed, span
from colony.server.auth import require_auth

if TYPE_CHECKING:
    from colony.node import Node

__all__ = [
    "REQUEST_ID_HEADER",
    "ObservabilityMiddleware",
    "install_node_collectors",
    "make_metrics_router",
    "metrics_router",
    "route_template",
    "sse_hook",
    "sse_stream_closed",
    "sse_stream_opened",
]

REQUEST_ID_HEADER = "x-request-id"
#: A client's request id is reused only if it is short and plain (it ends up in logs).
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED = "unmatched"
#: Status recorded for a request cancelled before its response started (nginx's convention).
CLIENT_CLOSED = 499

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_access = get_logger("colony.access")
#: Methods logged and counted by name; any other token a client sends becomes ``_OTHER`` (as
#: OpenTelemetry's conventions do), so the access line holds no client-chosen text at all.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return new_request_id()


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that handled ``scope`` (mount prefixes included), or ``unmatched``.

    A mounted app without routes of its own is labelled ``<mount>/{path}``.

    ``root_path`` is the scope's root path before routing; mounts extend it on the way in.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    prefix = str(scope.get("root_path", ""))[len(root_path):]
    if not isinstance(template, str):
        # FastAPI records no route for a mounted plain ASGI app (StaticFiles); the mount grew
        # root_path, and that prefix is a bounded label.
        return f"{prefix}/{{path}}" if prefix else UNMATCHED
    own = getattr(route, "path", None)
    if prefix and isinstance(own, str) and template != own and prefix.endswith(own):
        prefix = prefix[: len(prefix) - len(own)]  # a Mount: its own path is already in the template
    return prefix + template


class ObservabilityMiddleware:
    """Request id, metrics, span and access log for every HTTP request (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = bind_request_id(rid)
        scope.setdefault("state", {})["request_id"] = rid  # request.state.request_id
        method = str(scope.get("method", "GET"))
        if method not in _METHODS:
            method = "_OTHER"
        root_path = str(scope.get("root_path", ""))
        started = time.perf_counter()
        status, route = 0, UNMATCHED
        header = (REQUEST_ID_HEADER.encode(), rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [h for h in message.get("headers", ()) if h[0].lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            with span(f"HTTP {method}", {"http.request.method": method}) as sp:
                try:
                    await self.app(scope, receive, send_with_id)
                except asyncio.CancelledError:
                    status = status or CLIENT_CLOSED  # the client went away before an answer
                    raise
                finally:
                    status = status or 500  # no response started: the server answers 500
                    route = route_template(scope, root_path)
                    sp.update_name(f"{method} {route}")
                    sp.set_attributes({"http.route": route, "http.response.status_code": status})
                    if status >= 500:
                        mark_failed(sp, str(status))
        finally:
            duration = time.perf_counter() - started
            observe_http_request(route, method, status, duration)
            log = _access.error if status >= 500 else _access.info
            # Every value is from a fixed vocabulary (method, route template, numbers): the line
            # skips the redaction pass, which would otherwise be a third of a request's cost.
            log("http_request", method=method, route=route, status=status,
                duration_ms=round(duration * 1000, 3), _vetted=True)
            reset_request_id(token)


def sse_hook(opened: bool) -> None:
    """``app.state.sse_hook``: called with True when an event stream opens, False when it closes."""
    if opened:
        sse_stream_opened()
    else:
        sse_stream_closed()


def install_node_collectors(node: Node) -> Callable[[], None]:
    """Report the node's tool and model breakers on every scrape; returns the uninstaller.

    The node is held weakly, so a node dropped without uninstalling simply stops reporting.
    """
    ref = weakref.ref(node)

    def tools() -> dict[str, str]:
        live = ref()
        return live.executor.breaker_states() if live is not None else {}

    def models() -> dict[str, str]:
        live = ref()
        cascade = live.cascade if live is not None else None
        return {h.name: h.circuit.state for h in cascade.health()} if cascade is not None else {}

    undo = [register_circuit_source("tool", tools), register_circuit_source("model", models)]

    def uninstall() -> None:
        for fn in undo:
            fn()

    return uninstall


def make_metrics_router(auth_dependency: Callable[..., Any] | None = require_auth) -> APIRouter:
    """``GET /metrics`` in Prometheus text format, behind ``auth_dependency`` (None: open)."""
    router = APIRouter(tags=["observability"])
    dependencies = [Depends(auth_dependency)] if auth_dependency is not None else []

    # async on purpose: scrape-time callbacks read breaker and rate-window state, which the
    # event loop thread owns; a sync endpoint would read it from a worker thread.
    @router.get(
        "/metrics", dependencies=dependencies, summary="Prometheus metrics", response_class=Response,
        responses={200: {"description": "Prometheus text exposition format", "content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        body, content_type = render_latest()
        return Response(content=body, media_type=content_type)

    return router


metrics_router = make_metrics_router()
