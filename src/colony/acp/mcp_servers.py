"""MCP servers an editor hands over in ``session/new`` / ``session/load``, as Colony config.

ACP requires agents to support stdio MCP servers, and only those are accepted here (the
agent does not advertise HTTP or SSE). The editor's name for a server becomes the namespace
of its tools (``mcp__<name>__<tool>``), limited to the characters tool names allow.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from acp import RequestError
from acp.schema import McpServerStdio

from colony.config import McpServerConfig

__all__ = ["editor_mcp_servers"]


def editor_mcp_servers(servers: Sequence[Any]) -> list[McpServerConfig]:
    configs: list[McpServerConfig] = []
    for server in servers:
        if not isinstance(server, McpServerStdio):
            raise RequestError.invalid_params({
                "reason": "Colony accepts stdio MCP servers from the editor (it does not advertise http or sse)",
                "server": getattr(server, "name", None),
            })
        name = re.sub(r"[^A-Za-z0-9_-]", "_", server.name)[:32] or "editor"
        configs.append(McpServerConfig(
            name=name, command=server.command, args=list(server.args),
            env={e.name: e.value for e in server.env},
        ))
    return configs
