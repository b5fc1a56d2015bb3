"""The tools every agent has: files, patches, commands and HTTP, all confined to the workspace.

Each tool is an async function plus a pydantic argument model (see `colony.tools.registry`).
Tools return text for the model and raise a `ToolError` subclass, whose message says how to
recover, when they cannot. Governance (approval, rate limits, timeouts, audit) wraps them in
the middleware; the tools themselves only enforce what must hold however they are called:
the workspace boundary, the command allow/block lists, the allowed HTTP hosts, output limits.
This package imports only `colony.config`, `colony.errors`, `colony.tools` and the memory values
(`colony.memory.models`); nothing above it.
"""

from __future__ import annotations

from colony.tools.builtin.cartridges import CARTRIDGE_TOOLS
from colony.tools.builtin.commands import classify_command, parse_command, run_command
from colony.tools.builtin.files import list_dir, read_file, search_files, write_file
from colony.tools.builtin.http import http_get
from colony.tools.builtin.memory import memory_recall, memory_store
from colony.tools.builtin.patch import patch_file
from colony.tools.builtin.pay import pay
from colony.tools.registry import Tool, ToolRegistry

__all__ = [
    "BUILTIN_TOOLS",
    "builtin_registry",
    "classify_command",
    "http_get",
    "list_dir",
    "memory_recall",
    "memory_store",
    "parse_command",
    "patch_file",
    "pay",
    "read_file",
    "run_command",
    "search_files",
    "write_file",
]

BUILTIN_TOOLS: list[Tool] = [
    read_file, write_file, patch_file, list_dir, search_files, run_command, http_get, memory_store, memory_recall,
    *CARTRIDGE_TOOLS, pay,
]


def builtin_registry() -> ToolRegistry:
    """A fresh registry holding the built-in tools (fresh, so callers may register more)."""
    return ToolRegistry(list(BUILTIN_TOOLS))
