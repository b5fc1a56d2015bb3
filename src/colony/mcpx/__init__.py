"""The Model Context Protocol, both ways (A5).

- `client`: external MCP servers configured in ``Settings.mcp_servers`` (stdio or streamable
  HTTP) become tools in the node's registry, governed by the same middleware as built-ins.
- `pins`: each external tool's definition is pinned by hash; a change disables the tool until
  a person re-approves it, and every pin event is audited.
- `server`: `colony mcp serve` offers Colony's memory, tasks and read-only tools to other agents.

Named ``mcpx`` so that ``import mcp`` inside it always means the SDK. May import the node and
everything below it; nothing but surfaces (cli, acp) imports it.
"""

from __future__ import annotations

from colony.mcpx.client import McpHub, ServerHealth, tool_name
from colony.mcpx.pins import approve_pin, check_pin, definition_hash, list_pin_events, list_pins
from colony.mcpx.server import build_mcp_server, serve_mcp_stdio

__all__ = [
    "McpHub",
    "ServerHealth",
    "approve_pin",
    "build_mcp_server",
    "check_pin",
    "definition_hash",
    "list_pin_events",
    "list_pins",
    "serve_mcp_stdio",
    "tool_name",
]
