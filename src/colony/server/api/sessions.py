"""Sessions and their messages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, errors

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"], dependencies=[Depends(require_auth)])

SessionId = Annotated[str, Path(min_length=1, max_length=64, description="A session id, e.g. ses_1a2b3c4d5e6f7a8b.")]


@router.get("", summary="Recent sessions")
async def sessions(
    request: Request,
    limit: int = Query(20, ge=1, le=200),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> dict[str, Any]:
    items = node(request).records.list_sessions(limit=limit + 1, offset=offset)
    more = len(items) > limit
    return {"items": items[:limit], "next_offset": offset + limit if more else None}


def _session_or_404(request: Request, session_id: str) -> dict[str, Any]:
    row = node(request).records.get_session(session_id)
    if row is None:
        raise APIError(404, "not_found", f"No session {session_id!r}.")
    return row


@router.get("/{session_id}", summary="A session and its turns", responses=errors(404))
async def session(request: Request, session_id: SessionId) -> dict[str, Any]:
    row = _session_or_404(request, session_id)
    return {"session": row, "turns": node(request).records.list_turns(session_id)}


@router.get("/{session_id}/messages", summary="A session's messages in order", responses=errors(404))
async def messages(request: Request, session_id: SessionId) -> dict[str, Any]:
    _session_or_404(request, session_id)
    return {"items": [m.model_dump(mode="json") for m in node(request).records.load_messages(session_id)]}
