"""Test doubles for the model seam: a scripted OpenAI-compatible server and in-process models.

These exist so users and Colony's own suite can test agents without a real model. The product
never falls back to them: they run only when a test or demo builds them explicitly.

- `ScriptedModelServer` + `Reply`: real HTTP on 127.0.0.1, so real client code runs end to end.
- `FunctionModel`: the model as a Python function of the conversation, for fast agent-loop tests.
- `TestModel`: calls every tool once with schema-generated arguments, to check tool registration.

May import `colony.llm` and `colony.errors`; nothing in the core may import this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from colony.testing.function_model import AgentInfo, FunctionModel, TestModel
from colony.testing.scripted_server import Reply, ScriptedModelServer

if TYPE_CHECKING:
    from colony.testing.node_server import NodeServer

__all__ = ["AgentInfo", "FunctionModel", "NodeServer", "Reply", "ScriptedModelServer", "TestModel"]


def __getattr__(name: str) -> Any:
    if name == "NodeServer":  # loads the web stack; only when asked for
        from colony.testing.node_server import NodeServer

        return NodeServer
    raise AttributeError(f"module 'colony.testing' has no attribute {name!r}")
