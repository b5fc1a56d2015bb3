"""`colony acp`: run Colony as an Agent Client Protocol agent for an editor (Zed, JetBrains, …).

The editor starts this command and speaks JSON-RPC on its stdin/stdout; nothing else is
printed to stdout. Logs go to stderr (the editor's agent log).
"""

from __future__ import annotations

import asyncio

from colony.cli._common import exit_served, load, reporting

__all__ = ["acp"]


def acp() -> None:
    """Serve the Agent Client Protocol on stdin/stdout (an editor launches this).

    Sessions are stored in the node database, so an editor can reopen them after a restart.
    Tool calls that the approval policy marks "ask" show up as permission prompts in the editor;
    file edits and commands go through the editor when it offers that.

    Examples (Zed settings.json):

        "agent_servers": {"Colony": {"command": "colony", "args": ["acp"]}}

        COLONY_MODEL_BASE_URL=http://127.0.0.1:11434/v1 COLONY_MODEL_NAME=qwen2.5:7b colony acp
    """
    from colony.acp.server import serve_acp  # deferred: loads the protocol SDK

    settings = load()
    with reporting():
        asyncio.run(serve_acp(settings))
    exit_served()
