"""Consuming external MCP servers: their tools become governed Colony tools.

`McpHub` connects to each server in ``Settings.mcp_servers`` (stdio: the node starts the
command; streamable HTTP: a URL), lists its tools, checks each definition against its pin
(`colony.mcpx.pins`) and registers the approved ones in the node's `ToolRegistry` as
``mcp__<server>__<tool>``. From there they run through the same `ToolExecutor` stack as
built-in tools: schema-checked arguments, circuit breaker, rate limit, approval (``ask``
unless ``tool_policy`` says otherwise), timeout and audit.

Failure handling: a server that cannot be reached at start is recorded (``dead``) and the
node starts anyway. A call to a dead or hung server fails as a `ToolError` (a bounded wait,
``timeout_s``), which the tool's breaker counts; an open breaker stops calls for its
cooldown, and the next call after it reconnects. `health()` reports each server's state
and the breaker state of its tools.

Each connection lives in its own runner task, because the SDK's client must be entered and
exited in the same task; calls from other tasks use the open session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any, Literal

import mcp_types
from mcp import Client, StdioServerParameters
from pydantic import BaseModel, ConfigDict

from colony.config import McpServerConfig
from colony.errors import ConfigError, ToolDeniedError, ToolError
from colony.mcpx.pins import check_pin, definition_hash, pin_status
from colony.node import Node
from colony.observability.logs import get_logger
from colony.tools.middleware import ToolExecutor
from colony.tools.registry import Effect, Tool, ToolContext, ToolRegistry

__all__ = ["McpArguments", "McpHub", "ServerHealth", "tool_name"]

_log = get_logger("colony.mcp")
ServerState = Literal["connected", "dead", "stopped"]


class McpArguments(BaseModel):
    """Arguments of an external tool: any JSON object; the tool's own server validates them."""

    model_config = ConfigDict(extra="allow")


class ServerHealth(BaseModel):
    name: str
    transport: Literal["stdio", "http"]
    state: ServerState
    error: str | None = None
    tools: list[str] = []
    disabled: list[str] = []
    breakers: dict[str, str] = {}


def tool_name(server: str, tool: str) -> str:
    """The registry name: ``mcp__<server>__<tool>``, limited to what model APIs accept."""
    return f"mcp__{server}__{re.sub(r'[^A-Za-z0-9_-]', '_', tool)}"[:64]


def describe(exc: BaseException) -> str:
    """One line for an error, looking inside the exception groups task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def _result_text(result: mcp_types.CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content omitted]")
    if result.structured_content is not None and not parts:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts) or "(no output)"


class _Server:
    """One configured server: its connection, listed tools and pinned hashes."""

    def __init__(self, cfg: McpServerConfig) -> None:
        self.cfg = cfg
        self.client: Client | None = None
        self.state: ServerState = "stopped"
        self.error: str | None = None
        self.runner: asyncio.Task[None] | None = None
        self.stop = asyncio.Event()
        self.digests: dict[str, str] = {}  # external tool name → hash of the definition listed
        self.disabled: list[str] = []
        self.lock = asyncio.Lock()

    def target(self) -> StdioServerParameters | str:
        if self.cfg.url:
            return self.cfg.url
        if not self.cfg.command:
            raise ConfigError(f"MCP server {self.cfg.name!r} needs a command (stdio) or a url (streamable HTTP).")
        return StdioServerParameters(command=self.cfg.command, args=self.cfg.args, env=self.cfg.env or None)


class McpHub:
    """The node's external MCP servers. Call `start` once, `aclose` at shutdown."""

    def __init__(
        self,
        node: Node,
        *,
        servers: list[McpServerConfig] | None = None,
        registry: ToolRegistry | None = None,
        executor: ToolExecutor | None = None,
    ) -> None:
        """``servers`` default to the node's configuration; ``registry`` and ``executor`` to the
        node's (an editor session passes its own, so its servers' tools stay in that session)."""
        self.node = node
        self.registry = registry if registry is not None else node.registry
        self.executor = executor if executor is not None else node.executor
        configs = servers if servers is not None else node.settings.mcp_servers
        self._servers = {cfg.name: _Server(cfg) for cfg in configs}

    async def start(self) -> None:
        """Connect to every configured server; one that fails is reported, not fatal."""
        await asyncio.gather(*(self._connect(s) for s in self._servers.values()))

    async def _connect(self, server: _Server) -> None:
        async with server.lock:
            if server.state == "connected":
                return
            server.stop = asyncio.Event()
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # After a connect timeout nobody awaits it: mark its outcome read so asyncio stays quiet.
            ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            server.runner = asyncio.create_task(self._run(server, ready), name=f"mcp-{server.cfg.name}")
            try:
                async with asyncio.timeout(server.cfg.connect_timeout_s):
                    await asyncio.shield(ready)
            except Exception as exc:
                server.stop.set()
                server.state, server.error = "dead", describe(exc)
                _log.warning("mcp_server_unavailable", server=server.cfg.name, error=server.error)

    async def _run(self, server: _Server, ready: asyncio.Future[None]) -> None:
        stop = server.stop  # this runner's generation: a reconnect replaces it
        try:
            async with Client(server.target(), read_timeout_seconds=server.cfg.timeout_s) as client:
                listed = await client.list_tools()
                self._register(server, listed.tools)
                server.client, server.state, server.error = client, "connected", None
                ready.set_result(None)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            elif server.stop is stop and server.state == "connected":
                server.state, server.error = "dead", describe(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if server.stop is stop:
                server.client = None
                if server.state == "connected":
                    server.state = "stopped"

    def _register(self, server: _Server, tools: list[mcp_types.Tool]) -> None:
        name = server.cfg.name
        server.digests, server.disabled = {}, []
        for t in tools:
            schema = dict(t.input_schema)
            server.digests[t.name] = definition_hash(t.name, t.description, schema)
            if check_pin(self.node.db, name, t.name, t.description, schema) != "approved":
                server.disabled.append(t.name)
                _log.warning("mcp_tool_definition_changed", server=name, tool=t.name)
                continue
            registered = tool_name(name, t.name)
            if registered in self.registry:
                continue  # reconnected: the registered tool reads the new digest at call time
            read_only = bool(t.annotations and t.annotations.read_only_hint)
            effect: Effect = "read" if read_only else "execute"
            self.registry.register(Tool(
                name=registered,
                description=f"[MCP server {name}] {t.description or t.name}",
                args_model=McpArguments,
                fn=self._tool_fn(name, t.name),
                effect=effect,
                schema=schema or {"type": "object", "properties": {}},
            ))

    def _tool_fn(self, server_name: str, external: str) -> Any:
        async def call(ctx: ToolContext, args: McpArguments) -> str:
            return await self.call(server_name, external, args.model_dump(mode="json"))

        return call

    async def call(self, server_name: str, tool: str, arguments: dict[str, Any]) -> str:
        """Call an external tool (after the middleware has governed the call)."""
        server = self._servers[server_name]
        registered = tool_name(server_name, tool)
        if server.client is None:
            await self._connect(server)  # the breaker spaces out these attempts
        client = server.client
        if client is None:
            raise ToolError(registered, f"MCP server {server_name} is not reachable ({server.error}).")
        digest = server.digests.get(tool)
        if digest is None or pin_status(self.node.db, server_name, tool, digest) != "approved":
            raise ToolDeniedError(
                registered,
                f"The definition of {tool} on MCP server {server_name} changed since it was approved; it is "
                f"disabled until a person runs `colony mcp approve {server_name} {tool}`. Do not retry it.",
            )
        try:
            result = await client.call_tool(tool, arguments, read_timeout_seconds=server.cfg.timeout_s)
        except Exception as exc:
            # Dead or hung: drop the connection so the next call (once the breaker allows) starts afresh.
            server.state, server.error = "dead", describe(exc)
            server.client = None
            server.stop.set()
            raise ToolError(registered, f"MCP server {server_name} failed on {tool}: {server.error}") from exc
        text = _result_text(result)
        if result.is_error:
            raise ToolError(registered, f"{tool} on MCP server {server_name} reported an error: {text}")
        return text

    def health(self) -> list[ServerHealth]:
        breakers = self.executor.breaker_states()
        out: list[ServerHealth] = []
        for name, s in self._servers.items():
            tools = [tool_name(name, t) for t in s.digests if t not in s.disabled]
            out.append(ServerHealth(
                name=name, transport="http" if s.cfg.url else "stdio", state=s.state, error=s.error,
                tools=tools, disabled=list(s.disabled),
                breakers={t: breakers[t] for t in tools if t in breakers},
            ))
        return out

    async def aclose(self) -> None:
        for s in self._servers.values():
            s.stop.set()
        runners = [s.runner for s in self._servers.values() if s.runner is not None]
        for runner in runners:
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(runner)
            except (TimeoutError, Exception):
                runner.cancel()
                with contextlib.suppress(BaseException):
                    await runner
        for s in self._servers.values():
            s.state = "stopped"
