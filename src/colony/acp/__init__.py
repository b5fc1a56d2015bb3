"""The Agent Client Protocol surface (A5): `colony acp`, the agent an editor launches on stdio.

Built on the official SDK (``agent-client-protocol``): `agent` implements the ACP methods
over one `Node`; `updates` maps the loop's events to session updates; `approver` asks the
editor for permission, failing closed; `backends` routes file and command I/O through the
editor when it offers them; `session` holds the task-local current session; `transport`
answers malformed JSON-RPC input. May import everything below the surfaces (node, agent,
tools, store, mcpx); nothing imports it but the CLI.
"""

from __future__ import annotations

from colony.acp.agent import ColonyAcpAgent
from colony.acp.approver import AcpApprover, decision_of
from colony.acp.server import serve_acp, serve_acp_streams
from colony.acp.session import MODES, AcpSession, current_acp_session_id, current_session

__all__ = [
    "MODES",
    "AcpApprover",
    "AcpSession",
    "ColonyAcpAgent",
    "current_acp_session_id",
    "current_session",
    "decision_of",
    "serve_acp",
    "serve_acp_streams",
]
