"""Chat: start a turn, follow it as Server-Sent Events, cancel it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from colony.server.api._deps import node, turns
from colony.server.auth import require_auth
from colony.server.errors import APIError
from colony.server.turns import UnknownTurnError
from colony.store.sessions import get_turn

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["chat"], dependencies=[Depends(require_auth)])

SSE_PING_S = 15


class ChatRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=200_000, description="The user's message.")
    session_id: str | None = Field(default=None, max_length=64, description="Continue this session.")


class ChatStarted(BaseModel):
    turn_id: str
    session_id: str
    events_url: str


class CancelResult(BaseModel):
    turn_id: str
    status: str


def _events_url(turn_id: str) -> str:
    return f"/api/v1/turns/{turn_id}/events"


async def _start(request: Request, body: ChatRequest) -> tuple[str, str]:
    return await turns(request).start(body.prompt, body.session_id)


def _observe(request: Request, opened: bool) -> None:
    hook = getattr(request.app.state, "sse_hook", None)
    if hook is not None:
        hook(opened)


def _stream(request: Request, turn_id: str, after: int) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, Any]]:
        _observe(request, True)
        try:
            async for seq, ev in turns(request).subscribe(turn_id, after):
                yield {"id": str(seq), "event": ev.kind, "data": ev.model_dump_json()}
        finally:
            _observe(request, False)

    return EventSourceResponse(events(), ping=SSE_PING_S, headers={"Cache-Control": "no-store"})


@router.post("/chat", status_code=202, response_model=ChatStarted, summary="Start a turn")
async def start_chat(request: Request, body: ChatRequest) -> ChatStarted:
    """Start a turn in the background; follow it at `events_url`."""
    turn_id, session_id = await _start(request, body)
    return ChatStarted(turn_id=turn_id, session_id=session_id, events_url=_events_url(turn_id))


@router.post("/chat/stream", summary="Start a turn and stream it", response_class=EventSourceResponse)
async def stream_chat(request: Request, body: ChatRequest) -> EventSourceResponse:
    """Start a turn and answer with its event stream (text/event-stream)."""
    turn_id, _ = await _start(request, body)
    return _stream(request, turn_id, -1)


@router.get("/turns/{turn_id}/events", summary="Follow a turn", response_class=EventSourceResponse)
async def turn_events(
    request: Request, turn_id: str, last_event_id: str | None = Header(default=None, max_length=20)
) -> EventSourceResponse:
    """Server-Sent Events of a running or recently finished turn; resumes after `Last-Event-ID`."""
    if not turns(request).known(turn_id):
        raise APIError(404, "turn_not_streaming",
                       f"No live or recent turn {turn_id!r}; its record is at /api/v1/turns/{turn_id}.")
    after = -1
    if last_event_id is not None:
        try:
            after = int(last_event_id)
        except ValueError:
            raise APIError(422, "invalid_request", "Last-Event-ID must be an integer.") from None
    return _stream(request, turn_id, after)


@router.post("/turns/{turn_id}/cancel", status_code=202, response_model=CancelResult, summary="Cancel a turn")
async def cancel_turn(request: Request, turn_id: str) -> CancelResult:
    try:
        state = turns(request).cancel(turn_id)
    except UnknownTurnError:
        raise APIError(404, "not_found", f"No running turn {turn_id!r}.") from None
    if state == "finished":
        raise APIError(409, "already_finished", f"Turn {turn_id} has already finished.")
    return CancelResult(turn_id=turn_id, status=state)


@router.get("/turns/{turn_id}", summary="A turn's record")
async def turn_record(request: Request, turn_id: str) -> dict[str, Any]:
    row = get_turn(node(request).db, turn_id)
    if row is None:
        raise APIError(404, "not_found", f"No turn {turn_id!r}.")
    if row.get("perception"):
        row["perception"] = json.loads(row["perception"])
    return row
