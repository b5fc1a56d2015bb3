"""Backend cartridges over HTTP: ``/c/{slug}`` and ``/c/{slug}/{path}``, any method.

The request (method, path below the slug, headers, body as text) goes to the cartridge; its
status, headers and body come back. The node token is required unless ``cartridges_public``
is set. Routes are plain ``def``: a call is synchronous sandbox work, so FastAPI runs it in its
thread pool and the event loop keeps streaming other turns.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from colony.cartridges import CartridgeRequest
from colony.errors import CartridgeError
from colony.node import Node
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError

__all__ = ["router"]

#: Request headers not forwarded to a cartridge (credentials stay with the node).
_DROP = {"authorization", "cookie", "x-csrf-token"}


async def _auth(request: Request, n: Annotated[Node, Depends(node)]) -> None:
    if not n.settings.cartridges_public:
        await require_auth(request)


router = APIRouter(tags=["cartridges"], dependencies=[Depends(_auth)])


async def _serve(request: Request, n: Node, slug: str, path: str) -> Response:
    body = await request.body()
    req = CartridgeRequest(
        method=request.method, path="/" + path,
        headers={k: v for k, v in request.headers.items() if k.lower() not in _DROP},
        body=body.decode("utf-8", "replace"),
    )
    try:
        outcome = await asyncio.to_thread(n.cartridges.call, slug, req)
    except CartridgeError as exc:
        raise APIError(exc.status, "cartridge_error", str(exc)) from exc
    headers = {k: v for k, v in outcome.response.headers.items() if k.lower() not in ("content-length",)}
    headers["x-cartridge-version"] = str(outcome.version)
    if not outcome.ok:
        headers["x-cartridge-stop"] = outcome.stop
    return Response(content=outcome.response.body, status_code=outcome.response.status, headers=headers,
                    media_type=headers.pop("content-type", "text/plain; charset=utf-8"))


_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/c/{slug}", methods=_METHODS, include_in_schema=False)
async def cartridge_root(slug: str, request: Request, n: Annotated[Node, Depends(node)]) -> Response:
    return await _serve(request, n, slug, "")


@router.api_route("/c/{slug}/{path:path}", methods=_METHODS, include_in_schema=False)
async def cartridge_path(slug: str, path: str, request: Request, n: Annotated[Node, Depends(node)]) -> Response:
    return await _serve(request, n, slug, path)
