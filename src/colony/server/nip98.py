"""NIP-98 on the node's HTTP routes: a FastAPI dependency for node-to-node calls.

A route that another node (or an agent elsewhere) calls takes ``Depends(require_nip98)`` instead
of the bearer token: the caller proves a Nostr key, not knowledge of this node's token. The
dependency runs before the route body, so a refused request (401) does nothing at all; what it
checks, and why the replay cache is in SQLite, is `colony.identity.nip98`.

The URL a request must have signed is the one the client addressed: ``COLONY_PUBLIC_URL`` (plus
the path and query) when the node sits behind a proxy, otherwise scheme and Host as received —
the Host header itself is already checked against the node's names (`colony.server.hosts`).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from fastapi import Request

from colony.errors import Nip98Error
from colony.identity.events import Event
from colony.identity.nip98 import sqlite_replay_guard, verify_auth
from colony.server.api._deps import node
from colony.server.errors import APIError, ErrorOut

__all__ = ["NIP98_RESPONSES", "request_url", "require_nip98"]

log = logging.getLogger("colony.server")

#: ``responses=`` for a NIP-98 route's 401 (the bearer token's description would mislead).
NIP98_RESPONSES: dict[int | str, dict[str, Any]] = {401: {
    "model": ErrorOut,
    "description": "No valid NIP-98 'Authorization: Nostr <base64 event>' header; `reason` names the failed check "
                   "(missing, malformed, kind, signature, stale, url, method, payload, replayed).",
}}


def request_url(request: Request) -> str:
    """The absolute URL the client addressed, as a NIP-98 ``u`` tag must name it."""
    public = node(request).settings.public_url
    base = public.rstrip("/") if public else f"{request.url.scheme}://{request.url.netloc}"
    query = request.url.query
    return base + request.url.path + (f"?{query}" if query else "")


async def require_nip98(request: Request) -> Event:
    """The verified NIP-98 event of the request (its ``pubkey`` is the caller); 401 otherwise."""
    n = node(request)
    body = await request.body()  # cached by Starlette: the route still gets it
    header, url, method = request.headers.get("authorization"), request_url(request), request.method
    guard = sqlite_replay_guard(n.db)
    try:
        return await anyio.to_thread.run_sync(
            lambda: verify_auth(header, url=url, method=method, body=body, replay=guard))
    except Nip98Error as exc:
        log.info("NIP-98 refused on %s %s: %s", method, request.url.path, exc.reason)
        raise APIError(401, "unauthorized", str(exc), reason=exc.reason) from exc
