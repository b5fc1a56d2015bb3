"""Sessions, turns, messages and episodes: the record of what was asked and what was done.

Messages are written as they happen (not at the end of a turn), so a process killed mid-turn
leaves everything up to the kill in the database; `interrupt_orphaned_turns` marks such turns
on the next start.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any, Literal

from pydantic import BaseModel

from colony.llm.messages import MESSAGES, AssistantMessage, Message, close_tool_calls
from colony.redaction import redact, redact_text
from colony.store._db import Database, Row

__all__ = [
    "Episode",
    "TurnStatus",
    "add_episode",
    "add_message",
    "create_session",
    "finish_turn",
    "get_session",
    "get_turn",
    "interrupt_orphaned_turns",
    "list_episodes",
    "list_sessions",
    "list_turns",
    "load_messages",
    "new_id",
    "pid_alive",
    "start_turn",
]

TurnStatus = Literal["running", "completed", "failed", "cancelled", "interrupted"]
Outcome = Literal["success", "partial", "failure", "cancelled"]
Sentiment = Literal["positive", "neutral", "negative"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def create_session(db: Database, *, title: str = "", surface: str = "cli", agent: str = "colony") -> str:
    sid = new_id("ses")
    db.execute(
        "INSERT INTO sessions(id, title, surface, agent) VALUES (?, ?, ?, ?)",
        (sid, redact_text(title[:200]), surface, agent),
    )
    return sid


def get_session(db: Database, session_id: str) -> Row | None:
    return db.one("SELECT * FROM sessions WHERE id = ?", (session_id,))


def list_sessions(db: Database, *, limit: int = 20, offset: int = 0) -> list[Row]:
    return db.query(
        """SELECT s.*, (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns
           FROM sessions s ORDER BY s.updated_at DESC, s.rowid DESC LIMIT ? OFFSET ?""",
        (limit, offset),
    )


def start_turn(db: Database, session_id: str, prompt: str, perception: dict[str, Any] | None) -> str:
    tid = new_id("turn")
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO turns(id, session_id, status, prompt, perception, pid) VALUES (?, ?, 'running', ?, ?, ?)",
            (tid, session_id, redact_text(prompt), json.dumps(redact(perception)) if perception else None, os.getpid()),
        )
        conn.execute(
            "UPDATE sessions SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?", (session_id,)
        )
    return tid


def finish_turn(
    db: Database,
    turn_id: str,
    *,
    status: TurnStatus,
    final_text: str | None,
    error: str | None,
    tool_calls: int,
    model_requests: int,
    prompt_tokens: int,
    completion_tokens: int,
) -> None:
    db.execute(
        """UPDATE turns SET status = ?, final_text = ?, error = ?, tool_calls = ?, model_requests = ?,
           prompt_tokens = ?, completion_tokens = ?, finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
           WHERE id = ?""",
        (status, redact_text(final_text or "") if final_text is not None else None,
         redact_text(error) if error is not None else None, tool_calls, model_requests, prompt_tokens,
         completion_tokens, turn_id),
    )


def get_turn(db: Database, turn_id: str) -> Row | None:
    return db.one("SELECT * FROM turns WHERE id = ?", (turn_id,))


def list_turns(db: Database, session_id: str) -> list[Row]:
    return db.query("SELECT * FROM turns WHERE session_id = ? ORDER BY started_at, rowid", (session_id,))


def pid_alive(pid: int) -> bool:
    """True while a process with ``pid`` exists on this host (one we may not signal counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def interrupt_orphaned_turns(db: Database) -> int:
    """Mark turns left 'running' by a process that no longer exists; return how many.

    Their pending approvals go too: nobody is waiting for the answer any more, and an approval
    granted now would look as if it had let the call run. They are expired (a timeout is a deny).
    """
    rows = db.query("SELECT id, pid FROM turns WHERE status = 'running'")
    dead = [r["id"] for r in rows if r["pid"] is None or not pid_alive(int(r["pid"]))]
    with db.tx() as conn:
        for tid in dead:
            conn.execute(
                """UPDATE turns SET status = 'interrupted', error = 'the process running this turn stopped',
                   finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ? AND status = 'running'""",
                (tid,),
            )
        conn.execute(
            """UPDATE approvals SET status = 'expired', decided_by = 'process_stopped',
               decided_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
               WHERE status = 'pending' AND turn_id IS NOT NULL
                 AND turn_id NOT IN (SELECT id FROM turns WHERE status = 'running')"""
        )
    return len(dead)


def add_message(db: Database, session_id: str, turn_id: str | None, message: Message) -> int:
    """Append a message, secrets masked: what the model said or was told is kept, a key is not."""
    body = MESSAGES.dump_json([_redacted(message)]).decode()
    return db.execute(
        "INSERT INTO messages(session_id, turn_id, kind, body) VALUES (?, ?, ?, ?)",
        (session_id, turn_id, message.kind, body),
    )


def _redacted(message: Message) -> Message:
    if isinstance(message, AssistantMessage):
        calls = [c.model_copy(update={"arguments": redact(c.arguments),
                                      "raw_arguments": None if c.raw_arguments is None else redact_text(c.raw_arguments)})
                 for c in message.tool_calls]
        return message.model_copy(update={"content": redact_text(message.content), "tool_calls": calls})
    return message.model_copy(update={"content": redact_text(message.content)})


def load_messages(db: Database, session_id: str, *, limit: int | None = None) -> list[Message]:
    """The session's messages in order (the last ``limit`` when given), ready to send to a model.

    A turn killed mid-call (SIGKILL, power loss) leaves tool calls without results, and a window of
    the last ``limit`` messages can start with results whose calls it cut off; both are repaired
    here (`close_tool_calls`) on every load, so the stored record stays as it happened and every
    reader gets a history the model APIs accept.
    """
    if limit is None:
        rows = db.query("SELECT body FROM messages WHERE session_id = ? ORDER BY id", (session_id,))
    else:
        rows = db.query(
            "SELECT body FROM (SELECT id, body FROM messages WHERE session_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (session_id, limit),
        )
    out: list[Message] = []
    for row in rows:
        out.extend(MESSAGES.validate_json(row["body"]))
    return close_tool_calls(out)


class Episode(BaseModel):
    """What was asked, what was done, how it went: the unit lessons are later drawn from."""

    session_id: str
    turn_id: str | None
    asked: str
    done: list[str]
    outcome: Outcome
    sentiment: Sentiment
    tags: list[str] = []


def add_episode(db: Database, episode: Episode) -> int:
    return db.execute(
        "INSERT INTO episodes(session_id, turn_id, asked, done, outcome, sentiment, tags) VALUES (?,?,?,?,?,?,?)",
        (
            episode.session_id,
            episode.turn_id,
            redact_text(episode.asked),
            json.dumps([redact_text(d) for d in episode.done]),
            episode.outcome,
            episode.sentiment,
            json.dumps(episode.tags),
        ),
    )


def list_episodes(db: Database, *, session_id: str | None = None, limit: int = 50) -> list[Row]:
    if session_id:
        return db.query(
            "SELECT * FROM episodes WHERE session_id = ? ORDER BY id DESC LIMIT ?", (session_id, limit)
        )
    return db.query("SELECT * FROM episodes ORDER BY id DESC LIMIT ?", (limit,))
