"""The tool-call audit log with filters and keyset pagination."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from colony.server.api._deps import node
from colony.server.auth import require_auth

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], dependencies=[Depends(require_auth)])


@router.get("", summary="Tool calls, newest first")
async def audit(
    request: Request,
    tool: str | None = Query(None, max_length=200),
    outcome: str | None = Query(None, max_length=50),
    session_id: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=500),
    before_id: int | None = Query(None, ge=1, le=2**62),
) -> dict[str, Any]:
    rows = node(request).records.list_tool_calls(
        session_id=session_id, tool=tool, outcome=outcome, limit=limit + 1, before_id=before_id
    )
    more = len(rows) > limit
    items = [{**r, "arguments": json.loads(r["arguments"]), "risk": json.loads(r["risk"])} for r in rows[:limit]]
    return {"items": items, "next_before_id": items[-1]["id"] if more and items else None}
