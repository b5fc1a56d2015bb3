"""The cognitive substrate's snapshot: the same JSON `colony cognition status --json` prints."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request

from colony.cognition import build_substrate
from colony.server.api._deps import node
from colony.server.auth import require_auth

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/cognition", tags=["cognition"], dependencies=[Depends(require_auth)])


@router.get("", summary="Every substrate module's state")
async def cognition_status(request: Request) -> dict[str, Any]:
    n = node(request)
    substrate = n.cognition
    if substrate is not None:
        return await anyio.to_thread.run_sync(substrate.status)
    # Off: still show what is stored, so switching it on resumes from what this page shows.
    return await anyio.to_thread.run_sync(lambda: build_substrate(n.db, n.settings).status())
