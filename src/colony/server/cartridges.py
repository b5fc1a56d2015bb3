"""Backend cartridges over HTTP: ``/c/{slug}`` and ``/c/{slug}/{path}``, any method.

The request (method, path below the slug, headers, body as text) goes to the cartridge; its
status, headers and body come back. The node token is required unless ``cartridges_public``
is set. The sandbox call runs in a worker thread, so the event loop keeps streaming other turns.

**Origin isolation.** A cartridge is agent-written code served on the node's own host, where the
UI and its login cookie live. Every cartridge answer therefore carries
``Content-Security-Policy: sandbox allow-scripts allow-forms …``: the browser runs the page in a
unique opaque origin, so its script cannot read the UI's pages (and the CSRF token in them), its
requests to the node are cross-origin ones it cannot read, and it has no cookie access. Without
``allow-same-origin``, ``allow-top-navigation`` or ``allow-popups`` it cannot escape that
origin either. ``frame-ancestors 'none'`` keeps other pages (another port on this host, or any
site when ``cartridges_public`` is on) from framing it, and ``nosniff`` keeps a text answer from
being run as script. Headers that act on the node's origin rather than on the answer itself
(cookies, site-data clearing, service-worker scope, its own CSP or CORS grants) are dropped.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from colony.cartridges import CartridgeRequest
from colony.errors import CartridgeError
from colony.node import Node
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError
from colony.server.payments_gate import current_payment

__all__ = ["ISOLATION_HEADERS", "router"]

#: Request headers not forwarded to a cartridge (credentials stay with the node; the payment
#: itself is spent and stays too).
_DROP = {"authorization", "cookie", "x-csrf-token", "payment-signature", "x-payment"}
#: Headers the node sets on a paid call (payer, scheme, network, asset, amount); a client's own
#: headers with this prefix are dropped, so a cartridge can trust them.
PAYMENT_HEADER_PREFIX = "x-colony-payment-"
#: Response headers a cartridge may not set: they would act on the node's origin (its cookies,
#: stored data, service workers, policies) or loosen what the sandbox below grants.
_DROP_RESPONSE = {
    "content-length", "set-cookie", "set-cookie2", "clear-site-data", "service-worker-allowed",
    "content-security-policy", "content-security-policy-report-only", "x-frame-options",
    "strict-transport-security", "x-content-type-options", "permissions-policy", "referrer-policy",
    "cross-origin-opener-policy", "cross-origin-embedder-policy", "cross-origin-resource-policy",
    "origin-agent-cluster", "access-control-allow-origin", "access-control-allow-credentials",
    "access-control-allow-methods", "access-control-allow-headers", "access-control-expose-headers",
    "access-control-max-age", "access-control-allow-private-network", "timing-allow-origin",
}
#: A header a cartridge sets must be well formed (a token name, a value without line breaks or NULs).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]{0,4096}")
#: What every cartridge answer carries: an opaque origin of its own, no framing, no sniffing.
ISOLATION_HEADERS = {
    "content-security-policy": "sandbox allow-scripts allow-forms; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}


async def _auth(request: Request, n: Annotated[Node, Depends(node)]) -> None:
    """The node's token — unless cartridges are public, or this call was paid for (x402 gate)."""
    if not n.settings.cartridges_public and current_payment(request) is None:
        await require_auth(request)


router = APIRouter(tags=["cartridges"], dependencies=[Depends(_auth)])


async def _serve(request: Request, n: Node, slug: str, path: str) -> Response:
    body = await request.body()
    headers = {k: v for k, v in request.headers.items()
               if k.lower() not in _DROP and not k.lower().startswith(PAYMENT_HEADER_PREFIX)}
    paid = current_payment(request)
    if paid is not None:  # what the cartridge may rely on: set by the node, never by the client
        headers.update({f"{PAYMENT_HEADER_PREFIX}payer": paid.payer, f"{PAYMENT_HEADER_PREFIX}scheme": paid.scheme,
                        f"{PAYMENT_HEADER_PREFIX}network": paid.network, f"{PAYMENT_HEADER_PREFIX}asset": paid.asset,
                        f"{PAYMENT_HEADER_PREFIX}amount": paid.amount})
    req = CartridgeRequest(
        method=request.method, path="/" + path,
        headers=headers,
        body=body.decode("utf-8", "replace"),
    )
    try:
        outcome = await asyncio.to_thread(n.cartridges.call, slug, req)
    except CartridgeError as exc:
        raise APIError(exc.status, "cartridge_error", str(exc)) from exc
    status = outcome.response.status
    if not 200 <= status <= 599:
        raise APIError(502, "cartridge_bad_response",
                       f"Cartridge {slug!r} answered with status {status}; a cartridge must answer 200-599.")
    headers = {k.lower(): v for k, v in outcome.response.headers.items()
               if k.lower() not in _DROP_RESPONSE and _HEADER_NAME.fullmatch(k) and _HEADER_VALUE.fullmatch(v)}
    headers.update(ISOLATION_HEADERS)
    headers["x-cartridge-version"] = str(outcome.version)
    if not outcome.ok:
        headers["x-cartridge-stop"] = outcome.stop
    return Response(content=outcome.response.body, status_code=status, headers=headers,
                    media_type=headers.pop("content-type", "text/plain; charset=utf-8"))


_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/c/{slug}", methods=_METHODS, include_in_schema=False)
async def cartridge_root(slug: str, request: Request, n: Annotated[Node, Depends(node)]) -> Response:
    return await _serve(request, n, slug, "")


@router.api_route("/c/{slug}/{path:path}", methods=_METHODS, include_in_schema=False)
async def cartridge_path(slug: str, path: str, request: Request, n: Annotated[Node, Depends(node)]) -> Response:
    return await _serve(request, n, slug, path)
