"""Approvals: what waits for a person, and deciding it."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from colony.server.api._deps import broker, node
from colony.server.auth import require_auth
from colony.server.errors import APIError, errors
from colony.store.audit import ApprovalStatus

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"], dependencies=[Depends(require_auth)])


class DecisionBody(BaseModel):
    decision: Literal["allow", "deny"]


class DecisionResult(BaseModel):
    id: str
    status: str


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "arguments": json.loads(r["arguments"])}


@router.get("", summary="Approvals, newest first")
async def approvals(
    request: Request,
    status: Literal["pending", "approved", "denied", "expired"] | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    records = node(request).records
    records.expire_approvals()
    return {"items": [_row(r) for r in records.list_approvals(status=status, limit=limit)]}


@router.post("/{approval_id}", response_model=DecisionResult, summary="Allow or deny a pending tool call",
             responses=errors(404, 409))
async def decide(
    request: Request, approval_id: Annotated[str, Path(min_length=1, max_length=64)], body: DecisionBody
) -> DecisionResult:
    records = node(request).records
    records.expire_approvals()
    row = records.get_approval(approval_id)
    if row is None:
        raise APIError(404, "not_found", f"No approval {approval_id!r}.")
    status: ApprovalStatus = "approved" if body.decision == "allow" else "denied"
    if not records.decide_approval(approval_id, status, "web"):
        current = records.get_approval(approval_id)
        raise APIError(409, "not_pending", f"Approval {approval_id} is already {current['status'] if current else 'gone'}.")
    broker(request).resolve(approval_id, "approved" if body.decision == "allow" else "denied")
    return DecisionResult(id=approval_id, status=status)
