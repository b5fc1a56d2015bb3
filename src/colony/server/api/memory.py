"""The node's memory over HTTP: store, recall (with explanations), correct, forget, stats, curate.

Memory calls are synchronous SQLite and NumPy work (an embedding, a PageRank), so every route
here is a plain ``def``: FastAPI runs it in its thread pool and the event loop — which streams
other turns' events — is never blocked by an embedding. The database hands each thread its own
connection, so this is safe.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, cast, get_args

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, field_validator

from colony.errors import ColonyError
from colony.memory import Memory, MemoryError, MemoryIn, MemoryItem, MemoryStats, RecallResult
from colony.memory.curation import CurationReport
from colony.memory.models import Channel
from colony.node import Node
from colony.observability.metrics import set_memory_items_source
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError

__all__ = [
    "MemoryBody",
    "MemoryHealth",
    "MemoryStatsOut",
    "Stored",
    "install_memory_metrics",
    "memory_health",
    "parse_channels",
    "router",
]

router = APIRouter(prefix="/api/v1/memory", tags=["memory"], dependencies=[Depends(require_auth)])

MAX_K = 100
MAX_QUERY_CHARS = 2000
CHANNELS: tuple[str, ...] = get_args(Channel)
MemoryId = Annotated[int, Path(ge=1, le=2**62, description="A memory id.")]


class MemoryBody(MemoryIn):
    """A memory to store, as the API accepts it: ``expires_at`` must be a representable UTC time."""

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValueError("expires_at is out of range; send an ISO 8601 time such as 2030-01-01T00:00:00Z") from None


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


def parse_channels(values: list[str] | None) -> set[Channel] | None:
    """``["keyword,graph"]`` or ``["keyword", "graph"]`` → the channel set; None means all three."""
    if not values:
        return None
    names = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(names - set(CHANNELS))
    if unknown:
        raise APIError(422, "invalid_request",
                       f"channels: unknown channel {unknown[0]!r}; use any of {', '.join(CHANNELS)}")
    return cast("set[Channel]", names) or None


# Static paths first: "/recall" must not be read as a memory id.


@router.post("", status_code=201, response_model=Stored, summary="Store a memory")
def store(request: Request, body: MemoryBody) -> Stored:
    """Store one memory in every channel; says if it has no vector yet or contradicts another."""
    report = _memory(request).ingest([body])
    return Stored(id=report.ids[0], unembedded=bool(report.unembedded), flagged=[old for _, old in report.flagged])


@router.get("/recall", response_model=RecallResult, summary="Recall memories, with explanations")
def recall(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for.")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 5,
    channels: Annotated[list[str] | None, Query(max_length=3, description="keyword, semantic, graph (comma-separated or repeated); default all.")] = None,
) -> RecallResult:
    """Each hit names the channels that found it with its rank in each; down channels say why."""
    if not q.strip():
        raise APIError(422, "invalid_request", "q: the query is blank; say what to look for.")
    return _memory(request).recall(q, k=k, channels=parse_channels(channels), explain=True)


@router.get("/stats", response_model=MemoryStatsOut, summary="Counts of the memory store")
def stats(request: Request) -> MemoryStatsOut:
    mem = _memory(request)
    return MemoryStatsOut(**mem.stats().model_dump(), embedder_error=mem.embedder_error)


@router.post("/curate", response_model=CurationReport, summary="Expire, deduplicate and decay")
def curate(request: Request) -> CurationReport:
    return _memory(request).curate()


@router.get("/{memory_id}", response_model=MemoryItem, summary="One memory")
def get_memory(request: Request, memory_id: MemoryId) -> MemoryItem:
    return _exists(_memory(request), memory_id)


@router.get("/{memory_id}/history", response_model=History, summary="A memory's correction chain, oldest first")
def history(request: Request, memory_id: MemoryId) -> History:
    mem = _memory(request)
    _exists(mem, memory_id)
    return History(items=mem.history(memory_id))


@router.post("/{memory_id}/correct", status_code=201, response_model=Corrected, summary="Supersede a memory")
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


@router.delete("/{memory_id}", status_code=204, response_class=Response, summary="Forget a memory")
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
