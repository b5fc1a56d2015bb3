"""`ColonyAcpAgent`: the ACP methods an editor calls, over one `Node`.

initialize → (authenticate) → session/new | session/load | session/list → session/prompt
(streaming session/update) ⇄ agent-to-client calls (permission, fs, terminal) → session/cancel,
session/set_mode. Sessions are Colony sessions (surface ``acp``): the conversation is in the
core tables, the editor's folder and mode in ``acp_sessions``, so ``session/load`` works after
the editor and this process restart. Tool calls go through the node's `ToolExecutor`, so they
are governed and audited exactly as on every other surface. Stdio MCP servers the editor passes
with a session are connected for that session: their tools join a per-session registry (and
executor), never the node's.

Each prompt runs as its own task with the session in `current_session` and the editor I/O
backends in the tools' context, so concurrent sessions never see each other's editor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from acp import PROTOCOL_VERSION, RequestError, update_agent_message_text
from acp.helpers import update_current_mode
from acp.interfaces import Client
from acp.schema import (
    AgentCapabilities,
    AuthenticateResponse,
    ClientCapabilities,
    Implementation,
    InitializeResponse,
    ListSessionsResponse,
    LoadSessionResponse,
    NewSessionResponse,
    PromptCapabilities,
    PromptResponse,
    SessionCapabilities,
    SessionInfo,
    SessionListCapabilities,
    SetSessionModeResponse,
    StopReason,
    ToolKind,
)

from colony import __version__
from colony.acp import _store
from colony.acp.approver import AcpApprover
from colony.acp.backends import editor_backends
from colony.acp.mcp_servers import editor_mcp_servers
from colony.acp.prompt import prompt_text
from colony.acp.session import MODES, AcpSession, Mode, current_session, mode_state
from colony.acp.updates import SessionUpdate, TurnMapper, history_updates, tool_kind
from colony.agent.events import TurnFinished
from colony.agent.loop import Agent, PromptTooLargeError, RunDeps, run_turn
from colony.errors import ColonyError
from colony.llm.model import Model
from colony.mcpx.client import McpHub
from colony.node import Node
from colony.tools.backends import IoBackends, use_backends
from colony.tools.middleware import ToolExecutor
from colony.tools.registry import Effect, ToolRegistry
from colony.tools.workspace import Workspace

__all__ = ["ColonyAcpAgent"]

LIST_PAGE = 50


def _bad(reason: str, **data: Any) -> RequestError:
    return RequestError.invalid_params({"reason": reason, **data})


class ColonyAcpAgent:
    """Implements `acp.interfaces.Agent` for one node and one editor connection."""

    def __init__(self, node: Node, approver: AcpApprover, *, model: Model | None = None) -> None:
        self.node = node
        self.approver = approver
        self.model = model
        self.client: Client | None = None
        self.caps = ClientCapabilities()
        self.sessions: dict[str, AcpSession] = {}
        self._agent: Agent | None = None
        #: The protocol starts with ``initialize``; everything else before it is refused.
        self.initialized = False
        approver.kind_of = self._kind_of

    # -- connection ----------------------------------------------------------------------------
    def on_connect(self, conn: Client) -> None:
        self.client = conn
        self.approver.client = conn

    async def initialize(
        self, protocol_version: int, client_capabilities: ClientCapabilities | None = None,
        client_info: Implementation | None = None, **kwargs: Any,
    ) -> InitializeResponse:
        self.caps = client_capabilities or ClientCapabilities()
        self.initialized = True
        return InitializeResponse(
            protocol_version=min(protocol_version, PROTOCOL_VERSION),
            agent_capabilities=AgentCapabilities(
                load_session=True,
                prompt_capabilities=PromptCapabilities(embedded_context=True),
                session_capabilities=SessionCapabilities(list=SessionListCapabilities()),
            ),
            auth_methods=[],
            agent_info=Implementation(name="colony", title="Colony", version=__version__),
        )

    async def authenticate(self, method_id: str, **kwargs: Any) -> AuthenticateResponse | None:
        # A local stdio agent acts with the user's own rights; model keys come from COLONY_* config.
        raise _bad("Colony advertises no authentication methods; configure model keys with COLONY_* variables",
                   methodId=method_id)

    # -- sessions ------------------------------------------------------------------------------
    def _cwd(self, cwd: str) -> Path:
        path = Path(cwd)
        if not path.is_absolute() or not path.is_dir():
            raise _bad("cwd must be an absolute path to an existing directory", cwd=cwd)
        return path.resolve()

    def _require_initialized(self) -> None:
        if not self.initialized:
            raise RequestError.invalid_request({"reason": "call initialize first: the connection is not initialized"})

    async def new_session(self, cwd: str, mcp_servers: list[Any] | None = None, **kwargs: Any) -> NewSessionResponse:
        self._require_initialized()
        folder = self._cwd(cwd)
        sid = self.node.records.create_session(title=f"editor session in {folder.name}", surface="acp", agent="colony")
        _store.save_acp_session(self.node.db, sid, str(folder), "ask")
        session = AcpSession(id=sid, cwd=folder)
        self.sessions[sid] = session
        await self._attach_mcp(session, mcp_servers)
        return NewSessionResponse(session_id=sid, modes=mode_state("ask"))

    def _session(self, session_id: str) -> AcpSession:
        if session_id in self.sessions:
            return self.sessions[session_id]
        row = _store.get_acp_session(self.node.db, self.node.records, session_id)
        if row is None:
            raise _bad("unknown session; create one with session/new", sessionId=session_id)
        session = AcpSession(id=row.id, cwd=Path(row.cwd), mode=cast(Mode, row.mode))
        self.sessions[session_id] = session
        return session

    async def load_session(
        self, cwd: str, session_id: str, mcp_servers: list[Any] | None = None, **kwargs: Any
    ) -> LoadSessionResponse | None:
        self._require_initialized()
        session = self._session(session_id)
        folder = self._cwd(cwd)
        if folder != session.cwd:
            session.cwd = folder
            _store.save_acp_session(self.node.db, session.id, str(folder), session.mode)
        await self._attach_mcp(session, mcp_servers)
        for update in history_updates(self.node.records.load_messages(session.id), cwd=session.cwd,
                                      effect_of=self._effect_in(session)):
            await self._send(session.id, update)
        return LoadSessionResponse(modes=mode_state(session.mode))

    async def list_sessions(self, cwd: str | None = None, cursor: str | None = None, **kwargs: Any) -> ListSessionsResponse:
        self._require_initialized()
        try:
            offset = int(cursor or 0)
        except ValueError:
            raise _bad("cursor is not one this agent returned", cursor=cursor) from None
        rows = _store.list_acp_sessions(self.node.db, self.node.records, cwd=cwd, limit=LIST_PAGE + 1, offset=offset)
        infos = [SessionInfo(session_id=r.id, cwd=r.cwd, title=r.title, updated_at=r.updated_at) for r in rows]
        more = len(infos) > LIST_PAGE
        return ListSessionsResponse(sessions=infos[:LIST_PAGE], next_cursor=str(offset + LIST_PAGE) if more else None)

    async def set_session_mode(self, session_id: str, mode_id: str, **kwargs: Any) -> SetSessionModeResponse | None:
        self._require_initialized()
        session = self._session(session_id)
        if mode_id not in MODES:
            raise _bad(f"unknown mode; choose one of {', '.join(MODES)}", modeId=mode_id)
        session.mode = mode_id
        _store.set_acp_mode(self.node.db, session.id, mode_id)
        await self._send(session.id, update_current_mode(mode_id))
        return SetSessionModeResponse()

    # -- prompting -----------------------------------------------------------------------------
    async def prompt(self, session_id: str, prompt: list[Any], **kwargs: Any) -> PromptResponse:
        self._require_initialized()
        session = self._session(session_id)
        if session.task is not None and not session.task.done():
            raise RequestError.invalid_request({"reason": "a prompt is already running in this session"})
        text = prompt_text(prompt)
        if not text.strip():
            raise _bad("the prompt has no text")
        task = asyncio.create_task(self._run(session, text), name=f"acp-prompt-{session.id}")
        session.task = task
        try:
            stop: StopReason = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the connection is closing: not a session/cancel
            stop = "cancelled"
        finally:
            session.task = None
        return PromptResponse(stop_reason=stop)

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.task is not None:
            session.task.cancel()

    async def _run(self, session: AcpSession, text: str) -> StopReason:
        current_session.set(session)  # this task's own context: tools started here see it
        try:
            return await self._turn(session, text)
        except PromptTooLargeError as exc:
            raise _bad(str(exc)) from exc
        except ColonyError as exc:  # no model configured or reachable, database trouble: say so
            raise RequestError(-32603, str(exc), {"code": exc.code}) from exc

    async def _turn(self, session: AcpSession, text: str) -> StopReason:
        agent = await self._get_agent()
        executor = self._executor(session)
        deps = RunDeps(
            records=self.node.records, executor=executor, workspace=Workspace(session.cwd), settings=self.node.settings,
        )
        mapper = TurnMapper(session.cwd, self._effect_in(session))
        final: TurnFinished | None = None
        try:
            with use_backends(self._backends(session.id)):
                async for event in run_turn(agent, deps, text, session_id=session.id, surface="acp"):
                    for update in mapper.feed(event):
                        await self._send(session.id, update)
                    if isinstance(event, TurnFinished):
                        final = event
        except asyncio.CancelledError:
            # session/cancel mid-call or mid-permission: every announced call gets its final update
            for update in mapper.close_open("cancelled before it finished"):
                with contextlib.suppress(Exception):
                    await self._send(session.id, update)
            raise
        assert final is not None  # run_turn always ends with TurnFinished
        if final.status == "completed":
            return "end_turn"
        if final.error_code == "budget_exhausted":
            return "max_turn_requests"
        await self._send(session.id, update_agent_message_text(f"\n\nColony could not finish: {final.error}"))
        raise RequestError.internal_error({"reason": final.error, "code": final.error_code})

    # -- helpers -------------------------------------------------------------------------------
    async def _send(self, session_id: str, update: SessionUpdate | Any) -> None:
        if self.client is not None:
            await self.client.session_update(session_id=session_id, update=update)

    async def _get_agent(self) -> Agent:
        if self._agent is None:
            self._agent = await self.node.agent(self.model)
        return self._agent

    def _effect_in(self, session: AcpSession) -> Callable[[str], Effect | None]:
        """How a tool name reads in this session: its own registry (with the editor's MCP tools)."""
        registry = (session.executor or self.node.executor).registry
        return lambda name: registry.get(name).effect if name in registry else None

    def _kind_of(self, session_id: str | None, tool: str) -> ToolKind:
        """The kind the permission dialog shows: the same as the session's tool_call announced."""
        session = self.sessions.get(session_id or "")
        effect = self._effect_in(session)(tool) if session is not None else (
            self.node.registry.get(tool).effect if tool in self.node.registry else None)
        return tool_kind(tool, effect)

    def _executor(self, session: AcpSession) -> ToolExecutor:
        base = session.executor or self.node.executor
        if session.mode == "ask":
            return base
        if session.read_only is None:
            readers = ToolRegistry([t for t in base.registry if t.effect == "read"])
            session.read_only = ToolExecutor(readers, self.node.settings, self.node.records, approver=self.approver)
        return session.read_only

    async def _attach_mcp(self, session: AcpSession, servers: list[Any] | None) -> None:
        """Connect the MCP servers the editor passed; their tools exist in this session only."""
        if session.hub is not None:
            await session.hub.aclose()
            session.hub = session.executor = session.read_only = None
        configs = editor_mcp_servers(servers or [])
        if not configs:
            return
        registry = ToolRegistry(list(self.node.registry))
        executor = ToolExecutor(registry, self.node.settings, self.node.records, approver=self.approver)
        hub = McpHub(self.node, servers=configs, registry=registry, executor=executor)
        await hub.start()
        session.hub, session.executor = hub, executor

    def _backends(self, session_id: str) -> IoBackends:
        if self.client is None:
            return IoBackends()
        fs = self.caps.fs
        return editor_backends(
            self.client, session_id, read=bool(fs and fs.read_text_file), write=bool(fs and fs.write_text_file),
            terminal=bool(self.caps.terminal),
        )

    async def aclose(self) -> None:
        """Cancel prompts still running (their turns are recorded as cancelled), stop MCP servers."""
        tasks = [s.task for s in self.sessions.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for session in self.sessions.values():
            if session.hub is not None:
                await session.hub.aclose()
