"""The node server (A5, O): REST API with streaming, the web UI, health and metrics.

A surface: it may import everything below it (node, agent, tools, store, llm) and nothing
imports it. `create_app` assembles the routers; `run.build_server` is what `colony up` runs.
"""

from __future__ import annotations

from colony.server.app import ROUTERS, create_app
from colony.server.run import DEFAULT_PORT, build_server

__all__ = ["DEFAULT_PORT", "ROUTERS", "build_server", "create_app"]
