"""`colony history`: recent sessions, one session's transcript, and the tool-call audit log."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, fail, load, out, print_json, reporting
from colony.llm.messages import AssistantMessage, ToolResultMessage
from colony.store import open_database
from colony.store.records import RecordStore, open_records

__all__ = ["history"]


def history(
    session: Annotated[str | None, typer.Option("--session", "-s", help="Show this session's transcript.")] = None,
    tool: Annotated[str | None, typer.Option("--tool", help="Only audit rows of this tool.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Rows to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show recent sessions and tool calls from the audit log.

    Examples:

        colony history

        colony history --session ses_1234

        colony history --tool run_command --json
    """
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            records = open_records(db, settings)
            if session:
                if records.get_session(session) is None:
                    fail(f"no session {session!r}", ExitCode.FAILED, "list sessions with: colony history")
                _show_session(records, session, limit, as_json)
            else:
                _show_recent(records, tool, limit, as_json)
        finally:
            db.close()


def _show_recent(records: RecordStore, tool: str | None, limit: int, as_json: bool) -> None:
    sessions = records.list_sessions(limit=limit)
    calls = records.list_tool_calls(tool=tool, limit=limit)
    if as_json:
        print_json({"sessions": sessions, "tool_calls": calls})
        return
    t = Table(title="recent sessions")
    for col in ("session", "title", "turns", "updated"):
        t.add_column(col)
    for s in sessions:
        t.add_row(s["id"], escape(s["title"][:60]), str(s["turns"]), s["updated_at"])
    out.print(t)
    a = Table(title="recent tool calls (audit)")
    for col in ("time", "tool", "outcome", "approval", "ms", "arguments"):
        a.add_column(col, overflow="fold")
    for c in calls:
        colour = "green" if c["outcome"] == "ok" else "red"
        a.add_row(c["created_at"], c["tool"], f"[{colour}]{c['outcome']}[/]", c["approval"],
                  f"{c['latency_ms']:.1f}", escape(c["arguments"][:80]))
    out.print(a)


def _show_session(records: RecordStore, session: str, limit: int, as_json: bool) -> None:
    turns = records.list_turns(session)
    messages = records.load_messages(session)
    calls = records.list_tool_calls(session_id=session, limit=1000)
    if as_json:
        print_json({
            "session": records.get_session(session), "turns": turns,
            "messages": [m.model_dump(mode="json") for m in messages], "tool_calls": calls,
        })
        return
    for m in messages[-limit * 4:]:
        if isinstance(m, AssistantMessage):
            if m.content:
                out.print(f"[bold blue]agent:[/] {escape(m.content)}", highlight=False)
            for c in m.tool_calls:
                out.print(f"  [cyan]→ {c.name}[/] {escape(json.dumps(c.arguments, ensure_ascii=False)[:200])}",
                          highlight=False)
        elif isinstance(m, ToolResultMessage):
            colour = "red" if m.is_error else "dim"
            out.print(f"  [{colour}]← {escape(m.content[:200])}[/]", highlight=False)
        else:
            out.print(f"[bold green]{m.kind}:[/] {escape(m.content)}", highlight=False)
    statuses = ", ".join(f"{t['id']}={t['status']}" for t in turns)
    out.print(f"[dim]{len(turns)} turns ({statuses}) · {len(calls)} tool calls[/]")
