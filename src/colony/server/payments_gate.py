"""The x402 gate: the official SDK's FastAPI payment middleware in front of the priced routes.

A pure ASGI wrapper, so requests to routes that cost nothing (the UI, the API, health checks, the
chat streams) never pass through the SDK's `BaseHTTPMiddleware`: the gate compares the path with
the priced routes' literal prefixes and hands only candidates to the SDK middleware, which makes
the exact match, answers 402 with ``PAYMENT-REQUIRED``, verifies ``PAYMENT-SIGNATURE``, runs the
route, and settles after a 2xx answer (adding ``PAYMENT-RESPONSE``). A route that fails (non-2xx)
is not settled: the payer is not charged for an error.

The middleware is rebuilt when the node's prices change (`NodePayments.current`). A verified
payment is visible to the route as `current_payment(request)`; routes that a payment opens (the
cartridges, the agent service) accept it in place of the node's bearer token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request
from starlette.middleware.base import BaseHTTPMiddleware
from x402.http.middleware.fastapi import payment_middleware
from x402.http.types import RouteConfig
from x402.schemas import PaymentPayload, PaymentRequirements

from colony.payments.service import NodePayments, Paid, paid_by

__all__ = ["PaymentGate", "current_payment", "route_prefixes"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def current_payment(request: Request) -> Paid | None:
    """The payment the gate verified for this request, or None (not a priced route, or unpaid)."""
    payload = getattr(request.state, "payment_payload", None)
    requirements = getattr(request.state, "payment_requirements", None)
    if isinstance(payload, PaymentPayload) and isinstance(requirements, PaymentRequirements):
        return paid_by(payload, requirements)
    return None


def route_prefixes(routes: dict[str, RouteConfig]) -> tuple[str, ...]:
    """The literal start of each route pattern's path (a cheap pre-filter; the SDK matches exactly)."""
    out = []
    for pattern in routes:
        path = pattern.split(" ", 1)[1] if " " in pattern else pattern
        cut = min((i for i in (path.find("*"), path.find(":")) if i >= 0), default=len(path))
        out.append(path[:cut].rstrip("/") or "/")
    return tuple(sorted(set(out)))


class PaymentGate:
    """ASGI middleware: the SDK's payment middleware for priced paths, a pass-through otherwise."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._generation = -1
        self._prefixes: tuple[str, ...] = ()
        self._inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        payments: NodePayments | None = getattr(scope["app"].state, "payments", None) if scope["type"] == "http" \
            else None
        if payments is None:
            await self.app(scope, receive, send)
            return
        generation, routes = payments.current()
        if generation != self._generation:
            self._rebuild(payments, routes, generation)
        path = scope.get("path", "")
        if self._inner is None or not any(path.startswith(p) for p in self._prefixes):
            await self.app(scope, receive, send)
            return
        await self._inner(scope, receive, send)

    def _rebuild(self, payments: NodePayments, routes: dict[str, RouteConfig], generation: int) -> None:
        if routes:
            dispatch = payment_middleware(routes, payments.server)
            self._inner = BaseHTTPMiddleware(self.app, dispatch=dispatch)
        else:
            self._inner = None
        self._prefixes = route_prefixes(routes)
        self._generation = generation
