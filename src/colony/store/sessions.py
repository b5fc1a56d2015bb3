"""Sessions, turns, messages and episodes: what a record is, and what of it is kept at rest.

The SQL lives behind `colony.store.records.RecordStore` (the node's SQLite file,
`colony.store.sqlite_records`, or PostgreSQL, `colony.store.pg.records`). What both engines
share is here, so they cannot drift apart: ids, the shapes of a turn's end and of an episode,
and the values a row is written with — secrets masked (`colony.redaction`) before either engine
sees them, messages serialised one way and read back through one repair.

Messages are written as they happen (not at the end of a turn), so a process killed mid-turn
leaves everything up to the kill in the database; `RecordStore.interrupt_orphaned_turns` marks
such turns on the next start.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel

from colony.llm.messages import MESSAGES, AssistantMessage, Message, close_tool_calls
from colony.redaction import redact, redact_text

__all__ = [
    "ORPHANED_TURN_ERROR",
    "Episode",
    "Outcome",
    "Sentiment",
    "TurnEnd",
    "TurnStatus",
    "message_row",
    "messages_from_bodies",
    "new_id",
    "pid_alive",
    "session_row",
    "turn_row",
]

TurnStatus = Literal["running", "completed", "failed", "cancelled", "interrupted"]
Outcome = Literal["success", "partial", "failure", "cancelled"]
Sentiment = Literal["positive", "neutral", "negative"]

#: The error a turn left ``running`` by a process that no longer exists is closed with.
ORPHANED_TURN_ERROR = "the process running this turn stopped"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def pid_alive(pid: int) -> bool:
    """True while a process with ``pid`` exists on this host (one we may not signal counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def session_row(*, title: str, surface: str, agent: str) -> dict[str, Any]:
    """A new session's columns: a fresh id, the title cut to 200 characters and masked."""
    return {"id": new_id("ses"), "title": redact_text(title[:200]), "surface": surface, "agent": agent}


def turn_row(session_id: str, prompt: str, perception: dict[str, Any] | None) -> dict[str, Any]:
    """A new running turn's columns; ``pid`` is this process, so a later start can tell it died."""
    return {
        "id": new_id("turn"), "session_id": session_id, "prompt": redact_text(prompt),
        "perception": json.dumps(redact(perception)) if perception else None, "pid": os.getpid(),
    }


class TurnEnd(BaseModel):
    """How a turn ended and what it used: the columns `RecordStore.finish_turn` writes."""

    status: TurnStatus
    final_text: str | None = None
    error: str | None = None
    tool_calls: int = 0
    model_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def at_rest(self, turn_id: str) -> dict[str, Any]:
        """The values as stored: the text and the error masked."""
        return {
            **self.model_dump(), "id": turn_id,
            "final_text": None if self.final_text is None else redact_text(self.final_text),
            "error": None if self.error is None else redact_text(self.error),
        }


def message_row(session_id: str, turn_id: str | None, message: Message) -> dict[str, Any]:
    """A message's columns, secrets masked: what the model said or was told is kept, a key is not."""
    body = MESSAGES.dump_json([_redacted(message)]).decode()
    return {"session_id": session_id, "turn_id": turn_id, "kind": message.kind, "body": body}


def _redacted(message: Message) -> Message:
    if isinstance(message, AssistantMessage):
        calls = [c.model_copy(update={"arguments": redact(c.arguments),
                                      "raw_arguments": None if c.raw_arguments is None else redact_text(c.raw_arguments)})
                 for c in message.tool_calls]
        return message.model_copy(update={"content": redact_text(message.content), "tool_calls": calls})
    return message.model_copy(update={"content": redact_text(message.content)})


def messages_from_bodies(bodies: Iterable[str]) -> list[Message]:
    """Stored message bodies, oldest first, as a history the model APIs accept.

    A turn killed mid-call (SIGKILL, power loss) leaves tool calls without results, and a window of
    the last N messages can start with results whose calls it cut off; both are repaired here
    (`close_tool_calls`) on every load, so the stored record stays as it happened and every
    reader gets a history the model APIs accept.
    """
    out: list[Message] = []
    for body in bodies:
        out.extend(MESSAGES.validate_json(body))
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

    def at_rest(self) -> dict[str, Any]:
        """The values as stored: what was asked and done masked, the lists as JSON."""
        return {
            "session_id": self.session_id, "turn_id": self.turn_id, "asked": redact_text(self.asked),
            "done": json.dumps([redact_text(d) for d in self.done]), "outcome": self.outcome,
            "sentiment": self.sentiment, "tags": json.dumps(self.tags),
        }
