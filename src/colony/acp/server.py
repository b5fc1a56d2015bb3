"""Running the ACP agent on stdio: the node, its approver, MCP tools, and the SDK connection.

stdout carries protocol messages only; logs go to stderr. When the editor closes stdin the
connection ends, running prompts are cancelled (and recorded as cancelled) and the node is
closed.
"""

from __future__ import annotations

import asyncio
from typing import cast

import acp

from colony.acp.agent import ColonyAcpAgent
from colony.acp.approver import AcpApprover
from colony.acp.transport import JsonRpcLineTransport
from colony.config import Settings
from colony.llm.model import Model
from colony.mcpx.client import McpHub
from colony.node import Node

__all__ = ["STDIO_LIMIT", "serve_acp", "serve_acp_streams"]

#: Largest line accepted from the editor (an embedded file in a prompt can be big).
STDIO_LIMIT = 50 * 1024 * 1024


async def serve_acp_streams(
    settings: Settings, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, model: Model | None = None
) -> None:
    """Serve one editor connection over the given streams until it closes."""
    approver = AcpApprover()
    node = Node(settings, approver=approver)
    hub = McpHub(node)
    try:
        await hub.start()
        agent = ColonyAcpAgent(node, approver, model=model)
        try:
            # The stable methods are implemented; the SDK answers the rest (fork, resume, close,
            # config options, extensions) with JSON-RPC "method not found".
            await acp.run_agent(cast(acp.Agent, agent), JsonRpcLineTransport(reader, writer))
        finally:
            await agent.aclose()
    finally:
        await hub.aclose()
        await node.aclose()


async def serve_acp(settings: Settings) -> None:
    """Serve the editor that started this process on stdin/stdout."""
    reader, writer = await acp.stdio_streams(limit=STDIO_LIMIT)
    await serve_acp_streams(settings, reader, writer)
