"""What the pages show, built from store rows: a transcript of view items, audit rows, health.

Kept apart from the routes so the shaping (which turn a message belongs to, which audit row a
tool call matches, which arguments are safe to show) is plain functions over plain data. Every
string here ends up in a Jinja template with autoescaping on; nothing is marked safe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from colony.llm.messages import AssistantMessage, Message, ToolResultMessage, UserMessage
from colony.store import Row
from colony.tools.redact import redact

__all__ = [
    "RESULT_PREVIEW_CHARS",
    "AuditRow",
    "Item",
    "ToolView",
    "Transcript",
    "audit_rows",
    "build_transcript",
    "pretty_json",
    "when",
]

#: How much of a tool's output a transcript shows; the full text is in the session's messages.
RESULT_PREVIEW_CHARS = 4000
ARGUMENT_PREVIEW_CHARS = 240


def pretty_json(value: Any) -> str:
    """Arguments as the chat's JavaScript shows them (``JSON.stringify(v, null, 2)``)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def when(stamp: str | None) -> str:
    """``2025-01-02T03:04:05.678Z`` → ``2025-01-02 03:04:05`` (UTC; the full value goes in a title)."""
    if not stamp:
        return ""
    return stamp[:19].replace("T", " ")


@dataclass
class ToolView:
    """One tool call as a transcript row: the request, then what happened to it."""

    call_id: str
    name: str
    arguments: str
    outcome: str | None = None
    approval: str | None = None
    latency_ms: float | None = None
    content: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome is not None and self.outcome != "ok"


@dataclass
class Item:
    kind: Literal["user", "assistant", "tool", "notice", "status"]
    text: str = ""
    tool: ToolView | None = None
    turn: Row | None = None


@dataclass
class Transcript:
    items: list[Item] = field(default_factory=list)
    #: A turn of this session that this server is running now; the page follows it live.
    live_turn_id: str | None = None


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def build_transcript(
    messages: list[Message],
    turns: list[Row],
    calls: list[Row],
    *,
    is_live: Callable[[str], bool] | None = None,
) -> Transcript:
    """Interleave messages, tool calls (with their audit outcome) and one status line per turn.

    Args:
        messages: the session's messages in order.
        turns: the session's turns in order; the n-th user message opened the n-th turn.
        calls: the session's audit rows (any order); matched to tool calls by ``call_id``, and
            preferred for the arguments because the audit stores them redacted.
        is_live: ``turn_id -> bool``; a running turn this server streams is left out after its
            prompt, so the page can replay it from its event stream without duplicates.
    """
    audit = {str(c["call_id"]): c for c in calls}
    user_count = sum(isinstance(m, UserMessage) for m in messages)
    aligned = user_count == len(turns)
    out = Transcript()
    views: dict[str, ToolView] = {}
    turn_index = -1
    skipping = False

    def close_turn() -> None:
        if aligned and 0 <= turn_index < len(turns) and not skipping:
            turn = turns[turn_index]
            if turn["status"] == "running":
                out.items.append(Item("notice", "This turn is still running in another process; reload to see more."))
            else:
                out.items.append(Item("status", turn=turn))

    for message in messages:
        if isinstance(message, UserMessage):
            close_turn()
            turn_index += 1
            out.items.append(Item("user", message.content))
            turn = turns[turn_index] if aligned else None
            skipping = bool(turn and turn["status"] == "running" and is_live is not None and is_live(str(turn["id"])))
            if skipping and turn is not None:
                out.live_turn_id = str(turn["id"])
            continue
        if skipping:
            continue
        if isinstance(message, AssistantMessage):
            if message.content:
                out.items.append(Item("assistant", message.content))
            for call in message.tool_calls:
                view = _tool_view(call.id, call.name, call.arguments, audit.get(call.id))
                views[call.id] = view
                out.items.append(Item("tool", tool=view))
        elif isinstance(message, ToolResultMessage):
            answered = views.get(message.tool_call_id)
            if answered is None:
                continue
            answered.content = _truncate(message.content, RESULT_PREVIEW_CHARS)
            if answered.outcome is None:
                answered.outcome = "error" if message.is_error else "ok"
    close_turn()
    return out


def _tool_view(call_id: str, name: str, arguments: dict[str, Any], row: Row | None) -> ToolView:
    if row is None:
        return ToolView(call_id=call_id, name=name, arguments=pretty_json(redact(arguments)))
    try:
        shown: Any = json.loads(row["arguments"])
    except (TypeError, ValueError):
        shown = row["arguments"]
    return ToolView(
        call_id=call_id, name=name, arguments=pretty_json(shown), outcome=str(row["outcome"]),
        approval=str(row["approval"]), latency_ms=float(row["latency_ms"]),
    )


@dataclass
class AuditRow:
    id: int
    created_at: str
    tool: str
    outcome: str
    approval: str
    latency_ms: float
    arguments: str
    error: str | None
    session_id: str | None


def audit_rows(rows: list[Row]) -> list[AuditRow]:
    """Audit rows with their (already redacted) arguments shortened to one readable line."""
    out: list[AuditRow] = []
    for r in rows:
        args = str(r["arguments"])
        out.append(AuditRow(
            id=int(r["id"]), created_at=str(r["created_at"]), tool=str(r["tool"]), outcome=str(r["outcome"]),
            approval=str(r["approval"]), latency_ms=float(r["latency_ms"]),
            arguments=args if len(args) <= ARGUMENT_PREVIEW_CHARS else args[:ARGUMENT_PREVIEW_CHARS] + "…",
            error=r["error"], session_id=r["session_id"],
        ))
    return out
