"""`colony mcp serve`: Colony's own capabilities offered to other agents over MCP.

Exposed: the node's read-only tools (files, search, memory recall), memory store, and
``task_create`` / ``task_status`` over the node's durable task queue (`colony.mcpx.tasks`). Every call goes
through the node's `ToolExecutor`, so it is validated, rate-limited, approved and audited
exactly like a call from Colony's own loop. Nobody sits at an MCP connection to answer an
approval, so a call whose tier asks waits for a person to decide it through the node's
approvals (web UI or ``POST /api/v1/approvals/{id}``) until the approval deadline, and is
denied if nobody does.

Built on the SDK's low-level `Server` rather than `MCPServer`: Colony's tools already carry
their JSON schema (from their pydantic argument models), so they are listed as they are
instead of being re-derived from Python signatures.
"""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from colony import __version__
from colony.config import Settings
from colony.llm.messages import ToolCall
from colony.mcpx.tasks import task_tools
from colony.node import Node
from colony.store.sessions import new_id
from colony.tools.approval import ApprovalRequest, Approver, Decision
from colony.tools.registry import Tool, ToolContext

__all__ = ["TASK_TOOLS", "WRITE_TOOLS", "build_mcp_server", "exposed_tools", "serve_mcp_stdio", "wait_for_person"]

#: Tools that change state yet are offered over MCP (under the same approval tiers).
WRITE_TOOLS = ("memory_store",)
TASK_TOOLS = ("task_create", "task_status")
_POLL_S = 0.2


def exposed_tools(node: Node) -> list[Tool]:
    return [
        t for t in node.registry
        if (t.effect == "read" and not t.name.startswith("mcp__")) or t.name in WRITE_TOOLS
        or t.name in TASK_TOOLS
    ]


def wait_for_person(node: Node) -> Approver:
    """An approver that waits for the stored approval to be decided elsewhere (fail closed)."""

    async def approve(request: ApprovalRequest) -> Decision:
        while True:  # the gate's deadline (approval_timeout_s) ends the wait as "expired"
            row = node.records.get_approval(request.approval_id)
            status = row["status"] if row else "denied"
            if status != "pending":
                return "approved" if status == "approved" else "denied"
            await asyncio.sleep(_POLL_S)

    return approve


def build_mcp_server(node: Node) -> Server[Any]:
    """The MCP server over ``node`` (the node's executor should use `wait_for_person`)."""
    for t in task_tools(node):
        if t.name not in node.registry:
            node.registry.register(t)
    tools = {t.name: t for t in exposed_tools(node)}

    async def list_tools(
        ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=[
            mcp_types.Tool(
                name=t.name, description=t.description, input_schema=t.schema,
                annotations=mcp_types.ToolAnnotations(read_only_hint=t.effect == "read"),
            )
            for t in tools.values()
        ])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        if params.name not in tools:  # a protocol error, as the MCP tools spec shows, not a tool result
            known = ", ".join(tools)
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name}. This server offers: {known}.")
        call = ToolCall(id=new_id("mcp"), name=params.name, arguments=dict(params.arguments or {}))
        uses_memory = params.name.startswith("memory_")
        tctx = ToolContext(
            workspace=node.workspace, settings=node.settings, call_id=call.id,
            memory=node.memory if uses_memory else None,
        )
        result = await node.executor.call(call, tctx)
        return _result(result.content, error=result.is_error)

    return Server("colony", version=__version__, instructions=(
        "Colony's memory, tasks and read-only workspace tools. Calls are governed and audited by the node."
    ), on_list_tools=list_tools, on_call_tool=call_tool)


def _result(text: str, *, error: bool) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)], is_error=error)


async def serve_mcp_stdio(settings: Settings) -> None:
    """Serve MCP on stdin/stdout until the client disconnects."""
    node = Node(settings)
    node.executor.approver = wait_for_person(node)
    try:
        server = build_mcp_server(node)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await node.aclose()
