"""One editor session in memory, and the task-local "which ACP session am I in?".

A prompt runs in its own asyncio task; `current_session` is set in that task, so every tool
call it starts (tasks copy the context) can find its session — and through it the editor
connection — without a session id in any tool signature. Outside ACP it is ``None``.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from acp.schema import SessionMode, SessionModeState, StopReason

from colony.mcpx.client import McpHub
from colony.tools.middleware import ToolExecutor

__all__ = ["MODES", "AcpSession", "Mode", "current_acp_session_id", "current_session", "mode_state"]

Mode = Literal["ask", "read_only"]

#: The modes an editor can switch between. ``ask`` runs every tool under the node's approval
#: policy (writes ask the editor); ``read_only`` offers the model only tools that read.
MODES: dict[Mode, SessionMode] = {
    "ask": SessionMode(
        id="ask", name="Ask", description="Every tool under the node's approval policy; changes ask you first."
    ),
    "read_only": SessionMode(
        id="read_only", name="Read only", description="Only tools that read: no writes, commands or network."
    ),
}


@dataclass
class AcpSession:
    """An open editor session. ``hub`` and ``executor`` exist when the editor passed MCP servers:
    their tools join this session's registry only. ``read_only`` is the read-only executor, made
    on first use."""

    id: str
    cwd: Path
    mode: Mode = "ask"
    task: asyncio.Task[StopReason] | None = None
    hub: McpHub | None = None
    executor: ToolExecutor | None = None
    read_only: ToolExecutor | None = None


current_session: ContextVar[AcpSession | None] = ContextVar("colony_acp_session", default=None)


def current_acp_session_id() -> str | None:
    """The ACP session of the running task, or None outside an editor prompt."""
    session = current_session.get()
    return session.id if session else None


def mode_state(mode: Mode) -> SessionModeState:
    return SessionModeState(current_mode_id=mode, available_modes=list(MODES.values()))
