"""The partitioned coding benchmark over HTTP, under ``/api/v1/bench`` (the operator's bearer token).

    POST /api/v1/bench/colony-runs        start a run across the colony (asked of the queen this node
                                          follows, or coordinated here when this node is the queen or alone)
    GET  /api/v1/bench/colony-runs        the latest colony runs: state, progress, merged summary
    GET  /api/v1/bench/colony-runs/{run}  one run: who was given what, who solved what, refused reports

Importing this module registers the partitioned benchmark's message handlers
(`colony.federation.partition`); the router's lifespan runs its worker and coordinator while the node
serves (`colony.federation.partition_worker`), unless ``COLONY_FEDERATION_ENABLED`` is off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from colony.federation import partition, partition_worker
from colony.federation.errors import FederationError
from colony.federation.partition_wire import MAX_PROBLEMS, Mode, Suite
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, ErrorOut

__all__ = ["router"]


@asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[None]:
    """The partitioned benchmark's worker and coordinator while the node serves."""
    n = app.state.node
    stop: Callable[[], Awaitable[None]] | None = None
    if n.settings.federation_enabled:
        stop = partition_worker.start_in_process(n)
    try:
        yield
    finally:
        if stop is not None:
            await stop()


router = APIRouter(prefix="/api/v1/bench", tags=["bench"], dependencies=[Depends(require_auth)], lifespan=_running)
RunId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The colony run's id (32 hex).")]


class ColonyRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: Suite = "colony"
    mode: Mode = "agent"
    limit: int | None = Field(default=None, ge=1, le=MAX_PROBLEMS, description="Only the first N problems by id.")
    problem_timeout_s: float = Field(default=partition.DEFAULT_PROBLEM_TIMEOUT_S, gt=0, le=86_400,
                                     description="A node silent this long after it was given problems loses them.")


class ColonyRunOut(BaseModel):
    id: str
    state: str
    queen: str = Field(description="The run's coordinator now: the queen it was planned by, or the one that adopted it.")
    term: int = Field(description="The queen term it is coordinated under (0: a node alone, or not yet planned).")
    requester: str
    suite: str
    mode: str
    problems: int | None
    bench_run: str | None
    summary: dict[str, Any] | None
    created_at: float


class ColonyRunsOut(BaseModel):
    runs: list[dict[str, Any]]


def _out(row: dict[str, Any]) -> ColonyRunOut:
    return ColonyRunOut.model_validate({k: row[k] for k in ColonyRunOut.model_fields})


@router.post("/colony-runs", status_code=202, response_model=ColonyRunOut, responses={
    409: {"model": ErrorOut, "description": "The colony has no queen yet (`no_queen`)."},
}, summary="Start a run of the coding benchmark split across the colony's live nodes")
async def start_run(request: Request, body: ColonyRunIn) -> ColonyRunOut:
    n = node(request)
    try:
        row = await anyio.to_thread.run_sync(lambda: partition.request_run(
            n, suite=body.suite, mode=body.mode, limit=body.limit, problem_timeout_s=body.problem_timeout_s))
    except FederationError as exc:
        raise APIError(409, exc.reason, str(exc)) from exc
    return _out(row)


@router.get("/colony-runs", response_model=ColonyRunsOut, summary="The latest colony runs and their progress")
async def list_runs(request: Request) -> ColonyRunsOut:
    db = node(request).db
    return ColonyRunsOut(runs=await anyio.to_thread.run_sync(lambda: partition.status(db, 50)))


@router.get("/colony-runs/{run}", responses={404: {"model": ErrorOut, "description": "No such run here."}},
            summary="One colony run: who was given what, who solved what, refused reports")
async def get_run(request: Request, run: RunId) -> dict[str, Any]:
    db = node(request).db
    detail = await anyio.to_thread.run_sync(lambda: partition.run_detail(db, run))
    if detail is None:
        raise APIError(404, "not_found", f"No colony run {run} on this node.")
    return detail
