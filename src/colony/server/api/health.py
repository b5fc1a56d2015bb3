"""Health and readiness: cheap enough to be polled, truthful about what is down and why.

Nothing slow runs on the request path. The model's reachability is kept current by the app's
watcher; the MCP servers' and turns' states are in memory. The memory check counts rows (full
scans that grow with the store, in a worker thread; the first one also loads the embedding
model), so it is cached: a serving node computes it at start-up, later requests get the last
result and, once it is older than `MEMORY_CHECK_TTL_S`, start one refresh in the background —
never more than one at a time, and never in the way of the answer. Only a request that comes
before any result waits for it. ``checks.memory.checked_s_ago`` says how old the figures are.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from colony import __version__
from colony.errors import StoreError
from colony.node import Node
from colony.server.api._deps import node
from colony.server.api.memory import memory_health

__all__ = ["MEMORY_CHECK_TTL_S", "CachedCheck", "health_report", "memory_check", "model_status", "router"]

#: How old the memory figures in a health answer may be before a refresh starts.
MEMORY_CHECK_TTL_S = 5.0


class CachedCheck:
    """A slow check's last result, refreshed in the background once it is older than ``ttl_s``."""

    def __init__(self, compute: Callable[[], Awaitable[dict[str, Any]]], ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._compute, self.ttl_s, self._clock = compute, ttl_s, clock
        self._value: dict[str, Any] | None = None
        self._at = 0.0
        self._first = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        value = await self._compute()
        self._value, self._at = value, self._clock()

    def start(self) -> None:
        """Compute now, in the background (at startup), so that the first request finds a result."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._run())

    async def get(self) -> tuple[dict[str, Any], float]:
        """The result and its age in seconds."""
        if self._value is None:
            async with self._first:  # concurrent first requests share one computation
                if self._value is None:
                    if self._refresh is not None and not self._refresh.done():
                        await asyncio.shield(self._refresh)  # the start-up computation, under way
                    else:
                        await self._run()
        elif self._clock() - self._at > self.ttl_s and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._run())
        assert self._value is not None
        return self._value, max(0.0, self._clock() - self._at)

    async def aclose(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresh


def memory_check(n: Node) -> CachedCheck:
    """The memory's health entry, cached (see the module docstring)."""
    return CachedCheck(lambda: anyio.to_thread.run_sync(memory_health, n), MEMORY_CHECK_TTL_S)

router = APIRouter(prefix="/api/v1", tags=["health"])


def model_status(request: Request) -> dict[str, Any]:
    """From the state the app keeps current (never probes a model on the request path)."""
    state = request.app.state
    cascade = node(request).cascade
    reachable: dict[str, str | None] = state.model_reachable
    providers = []
    for p in cascade.health() if cascade is not None else []:
        row = p.model_dump(mode="json")
        row["reachable"] = p.name in reachable and reachable[p.name] is None
        row["reach_error"] = reachable.get(p.name)
        providers.append(row)
    usable = any(p["reachable"] and p["circuit"]["state"] != "open" for p in providers)
    return {"available": usable, "error": None if usable else state.model_error, "providers": providers}


#: How long a health or readiness answer waits for PostgreSQL before calling it down.
PG_CHECK_TIMEOUT_S = 3.0


def _pg_schema(n: Node) -> int:
    return int(n.pg.scalar("SELECT max(version) FROM schema_migrations") or 0)


async def postgres_status(n: Node) -> dict[str, Any] | None:
    """The shared database's state (None without ``COLONY_DATABASE_URL``): one query, in a thread, bounded."""
    if n.settings.database_url is None:
        return None
    from colony.store.pg import describe_url  # psycopg is imported only when a URL is set

    status: dict[str, Any] = {"ok": True, "server": describe_url(n.settings.database_url.get_secret_value()),
                              "schema_version": None}
    try:
        with anyio.fail_after(PG_CHECK_TIMEOUT_S):
            status["schema_version"] = await anyio.to_thread.run_sync(_pg_schema, n, abandon_on_cancel=True)
    except StoreError as exc:
        status.update(ok=False, error=str(exc))
    except TimeoutError:
        status.update(ok=False, error=f"PostgreSQL did not answer within {PG_CHECK_TIMEOUT_S:.0f} s")
    return status


async def health_report(request: Request) -> dict[str, Any]:
    """What ``GET /api/v1/health`` answers and the health page shows."""
    n = node(request)
    db: dict[str, Any] = {"ok": True, "path": str(n.settings.db_path), "schema_version": None}
    try:
        db["schema_version"] = int(n.db.scalar("PRAGMA user_version"))
    except StoreError as exc:
        db.update(ok=False, error=str(exc))
    pg = await postgres_status(n)
    if pg is not None:  # the shared state lives there: the node is not healthy without it
        db["postgresql"] = pg
        db["ok"] = db["ok"] and pg["ok"]
    model = model_status(request)
    healthy = db["ok"] and model["available"]
    memory, memory_age = await request.app.state.memory_check.get()
    return {
        "status": "healthy" if healthy else "degraded",
        "version": __version__,
        "database": db,
        "model": model,
        "checks": {
            "memory": {**memory, "checked_s_ago": round(memory_age, 1)},
            "turns_running": request.app.state.turns.running,
            "mcp": [h.model_dump(mode="json") for h in request.app.state.mcp.health()],
        },
    }


@router.get("/health", summary="Node health (no authentication)",
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}})
async def health(request: Request) -> JSONResponse:
    # The report is plain JSON values already; answering it directly skips a validation pass
    # that every poll would pay for nothing.
    return JSONResponse(await health_report(request))


class Readiness(BaseModel):
    ready: bool
    reason: str | None = None


@router.get("/ready", summary="Readiness (no authentication)", response_model=Readiness,
            responses={503: {"model": Readiness,
                             "description": "The database (or the PostgreSQL of COLONY_DATABASE_URL) cannot be read."}})
async def ready(request: Request) -> JSONResponse:
    n = node(request)
    try:
        n.db.scalar("SELECT 1")
    except StoreError as exc:
        return JSONResponse({"ready": False, "reason": str(exc)}, status_code=503)
    pg = await postgres_status(n)
    if pg is not None and not pg["ok"]:
        return JSONResponse({"ready": False, "reason": pg["error"]}, status_code=503)
    return JSONResponse({"ready": True})
