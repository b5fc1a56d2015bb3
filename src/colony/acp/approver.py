"""Asking the person in the editor: `session/request_permission`, failing closed.

The approval gate (`colony.tools.middleware`) decides *whether* to ask; this `Approver`
decides *how*: it sends the editor a permission request for the pending tool call and
approves only on an explicit "allow" option id that we offered. Anything else is a denial —
a rejection, a cancelled prompt, an error response, a response that does not validate, a
lost connection, or no editor at all. The gate's own deadline turns a silent editor into an
expired (denied) approval, so a broken editor can never approve a write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acp.interfaces import Client
from acp.schema import AllowedOutcome, PermissionOption, RequestPermissionResponse, ToolCallUpdate, ToolKind

from colony.observability.logs import get_logger
from colony.tools.approval import ApprovalRequest, Decision

__all__ = ["ALLOW_ONCE", "PERMISSION_OPTIONS", "REJECT_ONCE", "AcpApprover", "decision_of"]

ALLOW_ONCE = "allow-once"
REJECT_ONCE = "reject-once"
PERMISSION_OPTIONS = [
    PermissionOption(option_id=ALLOW_ONCE, name="Allow", kind="allow_once"),
    PermissionOption(option_id=REJECT_ONCE, name="Reject", kind="reject_once"),
]
_log = get_logger("colony.acp")


def decision_of(response: Any) -> Decision:
    """Approved only for a well-formed response selecting the allow option we offered."""
    if (
        isinstance(response, RequestPermissionResponse)
        and isinstance(response.outcome, AllowedOutcome)
        and response.outcome.option_id == ALLOW_ONCE
    ):
        return "approved"
    return "denied"


class AcpApprover:
    """The node's approver while it serves an editor; bound to the connection once it exists."""

    def __init__(self) -> None:
        self.client: Client | None = None
        #: How a tool is shown in the permission dialog, per session; set by the agent so that it
        #: matches the kind its ``tool_call`` announced (editor MCP tools included).
        self.kind_of: Callable[[str | None, str], ToolKind] = lambda session_id, tool: "other"

    async def __call__(self, request: ApprovalRequest) -> Decision:
        if self.client is None or request.session_id is None:
            return "denied"  # nobody to ask
        tool_call = ToolCallUpdate(
            tool_call_id=request.call_id,
            title=f"{request.tool}: {request.reason}",
            kind=self.kind_of(request.session_id, request.tool),
            status="pending",
            raw_input=request.arguments,
        )
        try:
            response = await self.client.request_permission(
                session_id=request.session_id, tool_call=tool_call, options=PERMISSION_OPTIONS
            )
        except Exception as exc:  # error response, malformed answer, closed connection: deny
            _log.warning("acp_permission_failed", tool=request.tool, call_id=request.call_id, error=repr(exc))
            return "denied"
        return decision_of(response)
