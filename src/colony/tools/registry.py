"""Tools: an async function plus a pydantic argument model, held in a frozen dataclass.

A tool is registered with the `tool` decorator. Its JSON schema is derived from the argument
model, so what the model is told and what is validated at call time cannot drift apart. There
is no class per tool and no magic: `Tool` is data, `ToolRegistry` is a dict with good errors.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel

from colony.config import Settings
from colony.errors import UnknownToolError
from colony.llm.messages import ToolDefinition
from colony.tools.workspace import Workspace

__all__ = ["Effect", "Tool", "ToolContext", "ToolFn", "ToolRegistry", "tool"]

#: What a tool does to the world; write and execute tools get postconditions and stricter defaults.
Effect = Literal["read", "write", "execute", "network"]


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may know: where it may touch files, the settings, and who called it.

    ``memory`` is the node's memory (a `colony.memory.Memory`) when it has one; typed loosely
    so the tool layer does not depend on the memory capability.
    """

    workspace: Workspace
    settings: Settings
    session_id: str | None = None
    turn_id: str | None = None
    call_id: str = ""
    memory: Any = None
    #: Set by the executor while the tool runs: ask a person mid-call (e.g. a payment above its
    #: approval threshold) through the same approver, record and fail-closed rules as the approval
    #: gate. Takes (reason, arguments); returns "approved", "denied" or "expired". None: nobody to ask.
    ask_person: Callable[[str, dict[str, Any]], Awaitable[str]] | None = None
    #: The name of the agent whose turn made the call (`colony.agent.loop.Agent.name`); the approval
    #: gate looks up that agent's own tiers by it. None: no agent (e.g. an MCP client's call).
    agent: str | None = None


ToolFn = Callable[[ToolContext, Any], Awaitable[str]]
Postcondition = Callable[[ToolContext, Any, str], Awaitable[None]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    fn: ToolFn
    effect: Effect = "read"
    postcondition: Postcondition | None = None
    schema: dict[str, Any] = field(default_factory=dict)

    def definition(self) -> ToolDefinition:
        return ToolDefinition(name=self.name, description=self.description, parameters=self.schema)


def _schema_for(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


def tool(
    name: str | None = None,
    *,
    effect: Effect = "read",
    postcondition: Postcondition | None = None,
) -> Callable[[Callable[[ToolContext, Any], Awaitable[str]]], Tool]:
    """Turn ``async def f(ctx: ToolContext, args: FArgs) -> str`` into a `Tool`.

    The argument model is read from the second parameter's annotation; the description is the
    docstring's first paragraph (what the model sees, so write it for the model).
    """

    def wrap(fn: Callable[[ToolContext, Any], Awaitable[str]]) -> Tool:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"tool {fn.__name__} must be an async function")
        params = list(inspect.signature(fn).parameters)
        hints = get_type_hints(fn)
        if len(params) != 2 or not (
            isinstance(hints.get(params[1]), type) and issubclass(hints[params[1]], BaseModel)
        ):
            raise TypeError(f"tool {fn.__name__} must take (ctx: ToolContext, args: <pydantic model>)")
        args_model: type[BaseModel] = hints[params[1]]
        doc = inspect.getdoc(fn) or ""
        description = doc.split("\n\n", 1)[0].replace("\n", " ").strip() or fn.__name__
        return Tool(
            name=name or fn.__name__,
            description=description,
            args_model=args_model,
            fn=fn,
            effect=effect,
            postcondition=postcondition,
            schema=_schema_for(args_model),
        )

    return wrap


class ToolRegistry:
    """Named tools available to an agent."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools or []:
            self.register(t)

    def register(self, t: Tool) -> Tool:
        if t.name in self._tools:
            raise ValueError(f"a tool named {t.name!r} is already registered")
        self._tools[t.name] = t
        return t

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools)) or "(none)"
            raise UnknownToolError(name, f"Unknown tool {name!r}. Available tools: {known}.") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def definitions(self) -> list[ToolDefinition]:
        return [t.definition() for t in self._tools.values()]
