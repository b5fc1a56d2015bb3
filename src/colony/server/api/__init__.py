"""The JSON API under /api/v1, one router per concern."""

from __future__ import annotations

from colony.server.api.approvals import router as approvals_router
from colony.server.api.audit import router as audit_router
from colony.server.api.chat import router as chat_router
from colony.server.api.cognition import router as cognition_router
from colony.server.api.health import router as health_router
from colony.server.api.memory import router as memory_router
from colony.server.api.sessions import router as sessions_router

__all__ = [
    "API_ROUTERS",
    "approvals_router",
    "audit_router",
    "chat_router",
    "cognition_router",
    "health_router",
    "memory_router",
    "sessions_router",
]

API_ROUTERS = [
    health_router, chat_router, sessions_router, approvals_router, audit_router, memory_router, cognition_router,
]
