"""Health and readiness: cheap enough to be polled, truthful about what is down and why."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from colony import __version__
from colony.errors import StoreError
from colony.server.api._deps import node
from colony.server.api.memory import memory_health

__all__ = ["model_status", "router"]

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


@router.get("/health", summary="Node health (no authentication)")
async def health(request: Request) -> dict[str, Any]:
    n = node(request)
    db: dict[str, Any] = {"ok": True, "path": str(n.settings.db_path), "schema_version": None}
    try:
        db["schema_version"] = int(n.db.scalar("PRAGMA user_version"))
    except StoreError as exc:
        db.update(ok=False, error=str(exc))
    model = model_status(request)
    healthy = db["ok"] and model["available"]
    return {
        "status": "healthy" if healthy else "degraded",
        "version": __version__,
        "database": db,
        "model": model,
        "checks": {
            "memory": await anyio.to_thread.run_sync(memory_health, n),
            "turns_running": request.app.state.turns.running,
            "mcp": [h.model_dump(mode="json") for h in request.app.state.mcp.health()],
        },
    }


@router.get("/ready", summary="Readiness (no authentication)")
async def ready(request: Request) -> JSONResponse:
    try:
        node(request).db.scalar("SELECT 1")
    except StoreError as exc:
        return JSONResponse({"ready": False, "reason": str(exc)}, status_code=503)
    return JSONResponse({"ready": True})
