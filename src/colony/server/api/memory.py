"""The node's memory over HTTP: store, recall (with explanations), correct, forget, stats, curate.

Memory calls are synchronous SQLite and NumPy work (an embedding, a PageRank), so every route
here is a plain ``def``: FastAPI runs it in its thread pool and the event loop — which streams
other turns' events — is never blocked by an embedding. The database hands each thread its own
connection, so this is safe.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, StrictFloat, field_validator

from colony.errors import ColonyError
from colony.memory import Memory, MemoryError, MemoryIn, MemoryItem, MemoryStats, RecallResult
from colony.memory.curation import CurationReport
from colony.memory.models import MAX_MEMORY_CHARS, Channel
from colony.node import Node
from colony.observability.metrics import set_memory_items_source
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import NOT_BLANK, APIError, errors

__all__ = [
    "MemoryBody",
    "MemoryHealth",
    "MemoryStatsOut",
    "Stored",
    "install_memory_metrics",
    "memory_health",
    "router",
]

router = APIRouter(prefix="/api/v1/memory", tags=["memory"], dependencies=[Depends(require_auth)])

MAX_K = 100
MAX_QUERY_CHARS = 2000
CHANNELS: tuple[str, ...] = get_args(Channel)
MemoryId = Annotated[int, Path(ge=1, le=2**62, description="A memory id.")]


#: RFC 3339 date-time, as the schema's ``format: date-time`` means it (an offset is required).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class MemoryBody(MemoryIn):
    """A memory to store, as the API accepts it.

    Stricter than `MemoryIn` where JSON could be misread, and with every rule in the schema:
    ``confidence`` is a number (``true`` is not 1.0), ``content`` has a non-blank character, and
    ``expires_at`` is an RFC 3339 string (not a Unix number) — one beyond the representable range
    is clamped to it (the year-1 or year-9999 edge in UTC), not refused.
    """

    content: str = Field(min_length=1, max_length=MAX_MEMORY_CHARS, pattern=NOT_BLANK)
    confidence: StrictFloat = Field(default=0.7, ge=0.0, le=1.0)

    @field_validator("expires_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            raise ValueError("expires_at must be an RFC 3339 time with an offset, e.g. 2030-01-01T00:00:00Z")
        return value

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            edge = datetime.min if value.year < 2000 else datetime.max
            return edge.replace(tzinfo=UTC)


class Stored(BaseModel):
    id: int
    #: Stored without a vector: the semantic channel misses it until a reindex.
    unembedded: bool
    #: Existing memories this one contradicts (both are now flagged for review).
    flagged: list[int]


class Corrected(BaseModel):
    id: int
    supersedes: int


class MemoryStatsOut(MemoryStats):
    embedder_error: str | None = None


class History(BaseModel):
    items: list[MemoryItem]


class MemoryHealth(BaseModel):
    status: str
    embedder: str | None
    error: str | None
    active: int
    unembedded: int
    detail: str


def _memory(request: Request) -> Memory:
    return node(request).memory


def _exists(mem: Memory, memory_id: int) -> MemoryItem:
    item = mem.get(memory_id)
    if item is None:
        raise APIError(404, "not_found", f"No memory {memory_id}; find ids with GET /api/v1/memory/recall?q=…")
    return item


# Static paths first: "/recall" must not be read as a memory id.


@router.post("", status_code=201, response_model=Stored, summary="Store a memory")
def store(request: Request, body: MemoryBody) -> Stored:
    """Store one memory in every channel; says if it has no vector yet or contradicts another."""
    report = _memory(request).ingest([body])
    return Stored(id=report.ids[0], unembedded=bool(report.unembedded), flagged=[old for _, old in report.flagged])


@router.get("/recall", response_model=RecallResult, summary="Recall memories, with explanations")
def recall(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK,
                            description="What to look for (not only blanks).")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
    channels: Annotated[list[Channel] | None, Query(
        max_length=3, description="Only these channels (repeat the parameter: channels=keyword&channels=graph); default all.",
    )] = None,
) -> RecallResult:
    """Each hit names the channels that found it with its rank in each; down channels say why."""
    return _memory(request).recall(q, k=k, channels=set(channels) if channels else None, explain=True)


@router.get("/stats", response_model=MemoryStatsOut, summary="Counts of the memory store")
def stats(request: Request) -> MemoryStatsOut:
    mem = _memory(request)
    return MemoryStatsOut(**mem.stats().model_dump(), embedder_error=mem.embedder_error)


@router.post("/curate", response_model=CurationReport, summary="Expire, deduplicate and decay")
def curate(request: Request) -> CurationReport:
    return _memory(request).curate()


@router.get("/{memory_id:int}", response_model=MemoryItem, summary="One memory", responses=errors(404))
def get_memory(request: Request, memory_id: MemoryId) -> MemoryItem:
    return _exists(_memory(request), memory_id)


@router.get("/{memory_id:int}/history", response_model=History, summary="A memory's correction chain, oldest first",
            responses=errors(404))
def history(request: Request, memory_id: MemoryId) -> History:
    mem = _memory(request)
    _exists(mem, memory_id)
    return History(items=mem.history(memory_id))


@router.post("/{memory_id:int}/correct", status_code=201, response_model=Corrected, summary="Supersede a memory",
             responses=errors(404, 409))
def correct(request: Request, memory_id: MemoryId, body: MemoryBody) -> Corrected:
    """Store the corrected memory; the old one stays as history (409 if it was already corrected)."""
    mem = _memory(request)
    old = _exists(mem, memory_id)
    if old.superseded_by is not None:
        raise APIError(409, "already_corrected",
                       f"Memory {memory_id} was already corrected by {old.superseded_by}; correct that one.",
                       superseded_by=old.superseded_by)
    try:
        new_id = mem.correct(memory_id, body)
    except MemoryError as exc:  # corrected or forgotten by someone else meanwhile
        raise APIError(409, "conflict", str(exc)) from None
    return Corrected(id=new_id, supersedes=memory_id)


@router.delete("/{memory_id:int}", status_code=204, response_class=Response, summary="Forget a memory",
               responses=errors(404))
def forget(request: Request, memory_id: MemoryId) -> Response:
    if not _memory(request).forget(memory_id):
        raise APIError(404, "not_found", f"No memory {memory_id}.")
    return Response(status_code=204)


# -- health and metrics -------------------------------------------------------------------------


def memory_health(n: Node) -> dict[str, Any]:
    """The memory's entry in ``/api/v1/health`` checks (blocking: call it from a worker thread)."""
    try:
        mem = n.memory
        figures = mem.stats()
    except ColonyError as exc:
        return MemoryHealth(status="degraded", embedder=None, error=str(exc), active=0, unembedded=0,
                            detail=f"the memory store cannot be read: {exc}").model_dump()
    error = mem.embedder_error
    if figures.embedder:
        detail = f"{figures.embedder} · {figures.active} active · {figures.unembedded} without a vector"
    else:
        detail = f"no semantic channel: {error or 'no embedding model'}"
    return MemoryHealth(
        status="ok" if figures.embedder else "degraded", embedder=figures.embedder, error=error,
        active=figures.active, unembedded=figures.unembedded, detail=detail,
    ).model_dump()


def install_memory_metrics(n: Node) -> Callable[[], None]:
    """Report ``colony_memory_items`` (active memories) on every scrape; returns the uninstaller.

    The node is held weakly, like the breaker collectors in `colony.server.observe`.
    """
    ref = weakref.ref(n)

    def active() -> int:
        live = ref()
        return live.memory.stats().active if live is not None else 0

    set_memory_items_source(active)
    return lambda: set_memory_items_source(None)
