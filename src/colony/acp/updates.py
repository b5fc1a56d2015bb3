"""The loop's event stream, translated into ACP ``session/update`` notifications.

The agent loop yields the same events for every surface (`colony.agent.events`); this module
is the ACP reading of them:

    TextDelta          → agent_message_chunk
    ToolCallStarted    → tool_call (pending, with kind, raw input and file location)
                         + plan (the turn's tool calls so far, this one pending)
    ApprovalRequested  → nothing: the permission request itself shows the call, still pending
    ToolCallRunning    → tool_call_update (in_progress) + plan (this step in progress)
    ToolCallFinished   → tool_call_update (completed / failed, with the result text)
                         + plan (this step completed)

A call's status only moves forward (pending → in_progress → completed / failed) and a later
update never replaces the title, kind or locations the first one gave. A call still open when
the turn is cancelled gets its final ``failed`` update (`TurnMapper.close_open`).
    Notice             → agent_thought_chunk
    TurnFinished       → the final text, when the model did not stream it

The plan is the turn's record of tool calls as they become known: Colony's loop does not
plan ahead, so it never shows steps that were not taken. `history_updates` replays a stored
conversation for ``session/load``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from acp import (
    plan_entry,
    start_tool_call,
    text_block,
    tool_content,
    update_agent_message_text,
    update_agent_thought_text,
    update_plan,
    update_tool_call,
    update_user_message_text,
)
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    PlanEntry,
    ToolCallLocation,
    ToolCallProgress,
    ToolCallStart,
    ToolKind,
    UserMessageChunk,
)

from colony.agent.events import (
    AgentEvent,
    Notice,
    TextDelta,
    ToolCallFinished,
    ToolCallRunning,
    ToolCallStarted,
    TurnFinished,
)
from colony.llm.messages import AssistantMessage, Message, ToolResultMessage, UserMessage
from colony.tools.registry import Effect

__all__ = ["KIND_BY_EFFECT", "SessionUpdate", "TurnMapper", "history_updates", "tool_kind"]

SessionUpdate = (
    AgentMessageChunk | AgentThoughtChunk | UserMessageChunk | ToolCallStart | ToolCallProgress | AgentPlanUpdate
)

KIND_BY_EFFECT: dict[Effect, ToolKind] = {"read": "read", "write": "edit", "execute": "execute", "network": "fetch"}
_KIND_BY_NAME: dict[str, ToolKind] = {"search_files": "search", "memory_recall": "search"}


def tool_kind(name: str, effect: Effect | None) -> ToolKind:
    return _KIND_BY_NAME.get(name) or (KIND_BY_EFFECT[effect] if effect else "other")


def _title(name: str, arguments: dict[str, Any]) -> str:
    for key in ("path", "command", "url", "query"):
        value = arguments.get(key)
        if isinstance(value, str) and value:
            return f"{name}: {value[:120]}"
    return name


def _locations(arguments: dict[str, Any], cwd: Path) -> list[ToolCallLocation] | None:
    path = arguments.get("path")
    if not isinstance(path, str) or not path:
        return None
    p = Path(path)
    return [ToolCallLocation(path=str(p if p.is_absolute() else cwd / p))]


class TurnMapper:
    """Maps one turn's events; holds the plan and whether any text was streamed."""

    def __init__(self, cwd: Path, effect_of: Callable[[str], Effect | None]) -> None:
        self.cwd = cwd
        self.effect_of = effect_of
        self.plan: dict[str, PlanEntry] = {}
        self.streamed = False
        #: Calls announced but not finished, so a cancelled turn can close them.
        self.open: set[str] = set()

    def _plan(self) -> AgentPlanUpdate:
        return update_plan(list(self.plan.values()))

    def feed(self, event: AgentEvent) -> list[SessionUpdate]:
        if isinstance(event, TextDelta):
            self.streamed = True
            return [update_agent_message_text(event.text)]
        if isinstance(event, ToolCallStarted):
            title = _title(event.name, event.arguments)
            self.plan[event.call_id] = plan_entry(title, status="pending")
            self.open.add(event.call_id)
            start = start_tool_call(
                event.call_id, title, kind=tool_kind(event.name, self.effect_of(event.name)), status="pending",
                locations=_locations(event.arguments, self.cwd), raw_input=event.arguments,
            )
            return [start, self._plan()]
        if isinstance(event, ToolCallRunning):
            if event.call_id in self.plan:
                self.plan[event.call_id] = self.plan[event.call_id].model_copy(update={"status": "in_progress"})
            return [update_tool_call(event.call_id, status="in_progress"), self._plan()]
        if isinstance(event, ToolCallFinished):
            self.open.discard(event.call_id)
            if event.call_id in self.plan:
                self.plan[event.call_id] = self.plan[event.call_id].model_copy(update={"status": "completed"})
            done = update_tool_call(
                event.call_id, status="completed" if event.outcome == "ok" else "failed", content=[tool_content(text_block(event.content))],
                raw_output={"outcome": event.outcome, "approval": event.approval, "latency_ms": event.latency_ms},
            )
            return [done, self._plan()]
        if isinstance(event, Notice):
            return [update_agent_thought_text(event.message)]
        if isinstance(event, TurnFinished) and event.text and not self.streamed:
            return [update_agent_message_text(event.text)]
        return []

    def close_open(self, reason: str) -> list[SessionUpdate]:
        """Final ``failed`` updates for calls the turn left open (cancelled mid-call or mid-approval)."""
        updates: list[SessionUpdate] = [
            update_tool_call(call_id, status="failed", content=[tool_content(text_block(reason))],
                             raw_output={"outcome": "cancelled"})
            for call_id in sorted(self.open)
        ]
        for call_id in self.open:
            if call_id in self.plan:
                self.plan[call_id] = self.plan[call_id].model_copy(update={"status": "completed"})
        self.open.clear()
        return [*updates, self._plan()] if updates else []


def history_updates(messages: Sequence[Message], *, cwd: Path | None = None,
                    effect_of: Callable[[str], Effect | None] | None = None) -> list[SessionUpdate]:
    """A stored conversation as the updates an editor replays on ``session/load``.

    Every call shows as it did live: announced with its kind and file location, then finished;
    a call whose turn was interrupted has the result the store closed it with, as ``failed``.
    """
    updates: list[SessionUpdate] = []
    for m in messages:
        if isinstance(m, UserMessage):
            updates.append(update_user_message_text(m.content))
        elif isinstance(m, AssistantMessage):
            if m.content:
                updates.append(update_agent_message_text(m.content))
            updates.extend(
                start_tool_call(c.id, _title(c.name, c.arguments), status="pending", raw_input=c.arguments,
                                kind=tool_kind(c.name, effect_of(c.name) if effect_of else None),
                                locations=_locations(c.arguments, cwd) if cwd is not None else None)
                for c in m.tool_calls
            )
        elif isinstance(m, ToolResultMessage):
            updates.append(
                update_tool_call(
                    m.tool_call_id, status="failed" if m.is_error else "completed",
                    content=[tool_content(text_block(m.content[:2000]))],
                )
            )
    return updates
