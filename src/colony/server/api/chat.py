"""Chat: start a turn, follow it as Server-Sent Events, cancel it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from colony.agent.events import AgentEvent, ToolCallStarted, TurnFinished
from colony.server.api._deps import node, turns
from colony.server.auth import require_auth
from colony.server.errors import APIError, errors
from colony.server.markdown import render_markdown
from colony.server.turns import TurnManager, UnknownTurnError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["chat"], dependencies=[Depends(require_auth)])

SSE_PING_S = 15
TurnId = Annotated[str, Path(min_length=1, max_length=64, description="A turn id, e.g. turn_1a2b3c4d5e6f7a8b.")]


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


def _data(manager: TurnManager, turn_id: str, seq: int, ev: AgentEvent) -> str:
    """An event as the stream sends it. Where an answer segment ends (a tool call starts, the turn
    finishes), ``text_html`` carries that segment as sanitised HTML (`colony.server.markdown`), so
    the page shows rendered markdown without ever rendering the model's text itself."""
    if isinstance(ev, ToolCallStarted | TurnFinished):
        text = ev.text if isinstance(ev, TurnFinished) and ev.text else manager.text_before(turn_id, seq)
        if text.strip():
            data = {**ev.model_dump(mode="json"), "text_html": str(render_markdown(text))}
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"))  # as compact as the others
    return ev.model_dump_json()


def _stream(request: Request, turn_id: str, after: int) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, Any]]:
        _observe(request, True)
        manager = turns(request)
        try:
            async for seq, ev in manager.subscribe(turn_id, after):
                yield {"id": str(seq), "event": ev.kind, "data": _data(manager, turn_id, seq, ev)}
        finally:
            _observe(request, False)

    return EventSourceResponse(events(), ping=SSE_PING_S, headers={"Cache-Control": "no-store"})


@router.post("/chat", status_code=202, response_model=ChatStarted, summary="Start a turn", responses=errors(503))
async def start_chat(request: Request, body: ChatRequest) -> ChatStarted:
    """Start a turn in the background; follow it at `events_url`."""
    turn_id, session_id = await _start(request, body)
    return ChatStarted(turn_id=turn_id, session_id=session_id, events_url=_events_url(turn_id))


@router.post("/chat/stream", summary="Start a turn and stream it", response_class=EventSourceResponse,
             responses=errors(503))
async def stream_chat(request: Request, body: ChatRequest) -> EventSourceResponse:
    """Start a turn and answer with its event stream (text/event-stream)."""
    turn_id, _ = await _start(request, body)
    return _stream(request, turn_id, -1)


@router.get("/turns/{turn_id}/events", summary="Follow a turn", response_class=EventSourceResponse,
            responses=errors(404))
async def turn_events(
    request: Request,
    turn_id: TurnId,
    last_event_id: Annotated[str, Header(pattern=r"^(-1|[0-9]{1,18})$", description=(
        "Resume after this event id (the `id:` of the last event received); -1, the default, replays all."))] = "-1",
) -> EventSourceResponse:
    """Server-Sent Events of a running or recently finished turn; resumes after `Last-Event-ID`."""
    if not turns(request).known(turn_id):
        raise APIError(404, "turn_not_streaming",
                       f"No live or recent turn {turn_id!r}; its record is at /api/v1/turns/{turn_id}.")
    return _stream(request, turn_id, int(last_event_id))


@router.post("/turns/{turn_id}/cancel", status_code=202, response_model=CancelResult, summary="Cancel a turn",
             responses=errors(404, 409))
async def cancel_turn(request: Request, turn_id: TurnId) -> CancelResult:
    try:
        state = turns(request).cancel(turn_id)
    except UnknownTurnError:
        raise APIError(404, "not_found", f"No running turn {turn_id!r}.") from None
    if state == "finished":
        raise APIError(409, "already_finished", f"Turn {turn_id} has already finished.")
    return CancelResult(turn_id=turn_id, status=state)


@router.get("/turns/{turn_id}", summary="A turn's record", responses=errors(404))
async def turn_record(request: Request, turn_id: TurnId) -> dict[str, Any]:
    row = node(request).records.get_turn(turn_id)
    if row is None:
        raise APIError(404, "not_found", f"No turn {turn_id!r}.")
    if row.get("perception"):
        row["perception"] = json.loads(row["perception"])
    return row
