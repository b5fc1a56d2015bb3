"""The node's conversation records and their audit, behind one seam: SQLite or PostgreSQL.

`RecordStore` is what the agent loop, the tool middleware, the surfaces (server, CLI, ACP, MCP)
and the market need from sessions, turns, messages, episodes, tool calls, approvals and model
calls. Two engines implement it with the same contract (tests/contract/test_record_store_contract.py):

- `SqliteRecordStore` (`colony.store.sqlite_records`): the node's own file, the default;
- `PgRecordStore` (`colony.store.pg.records`): the database of ``COLONY_DATABASE_URL``, shared by
  every node of a colony.

`open_records` picks one from the settings; `Node.records` and `RunDeps.records` hold its answer,
and code that has only a database and settings (the CLI, governance, cognition) calls it itself —
on PostgreSQL it returns a store over the process-wide pool, so calling it often costs nothing.
What a row holds at rest (secrets masked, JSON encoded) is decided once for both engines by the
record types in `colony.store.sessions` and `colony.store.audit`.

Rows are plain dicts with the same keys and value types on both engines (timestamps are ISO-8601
text in UTC with milliseconds, ``2025-01-31T12:00:00.123Z``), so readers never ask which one.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from colony.llm.messages import Message
from colony.store._db import Database, Row
from colony.store.audit import ApprovalRecord, ApprovalStatus, LlmCallRecord, ToolCallRecord
from colony.store.sessions import Episode, TurnEnd
from colony.store.sqlite_records import SqliteRecordStore

if TYPE_CHECKING:
    from colony.config import Settings
    from colony.store.pg._db import PgDatabase

__all__ = ["RecordStore", "open_records"]


class RecordStore(Protocol):
    """Sessions, turns, messages and episodes; the tool-call audit, approvals and model calls."""

    # -- sessions and turns ----------------------------------------------------------------------
    def create_session(self, *, title: str = "", surface: str = "cli", agent: str = "colony") -> str:
        """Start a session; returns its id."""
        ...

    def get_session(self, session_id: str) -> Row | None: ...

    def get_sessions(self, session_ids: Sequence[str]) -> list[Row]:
        """The sessions among ``session_ids`` that exist, in no particular order."""
        ...

    def list_sessions(self, *, limit: int = 20, offset: int = 0) -> list[Row]:
        """Most recently active first, each with its number of ``turns``."""
        ...

    def start_turn(self, session_id: str, prompt: str, perception: dict[str, Any] | None) -> str:
        """Record a running turn (by this process) and touch its session; returns the turn's id."""
        ...

    def finish_turn(self, turn_id: str, end: TurnEnd) -> None: ...

    def get_turn(self, turn_id: str) -> Row | None: ...

    def list_turns(self, session_id: str) -> list[Row]:
        """The session's turns, oldest first."""
        ...

    def interrupt_orphaned_turns(self) -> int:
        """Mark turns left running by a process of this host that no longer exists; return how many.

        Their pending approvals are expired too: nobody waits for the answer any more, and an
        approval granted now would look as if it had let the call run.
        """
        ...

    # -- messages and episodes -------------------------------------------------------------------
    def add_message(self, session_id: str, turn_id: str | None, message: Message) -> int:
        """Append a message (secrets masked); returns its id, which orders the session."""
        ...

    def load_messages(self, session_id: str, *, limit: int | None = None) -> list[Message]:
        """The session's messages in order (the last ``limit`` when given), repaired for a model API."""
        ...

    def add_episode(self, episode: Episode) -> int: ...

    def list_episodes(self, *, session_id: str | None = None, limit: int = 50) -> list[Row]:
        """Newest first."""
        ...

    # -- the audit -------------------------------------------------------------------------------
    def record_tool_call(self, rec: ToolCallRecord) -> int: ...

    def list_tool_calls(self, *, session_id: str | None = None, tool: str | None = None,
                        outcome: str | None = None, limit: int = 50, before_id: int | None = None) -> list[Row]:
        """Newest first; page with ``before_id`` (the smallest id of the previous page)."""
        ...

    def create_approval(self, rec: ApprovalRecord) -> None:
        """Record a pending approval that expires ``rec.timeout_s`` from now by the database's clock."""
        ...

    def get_approval(self, approval_id: str) -> Row | None: ...

    def decide_approval(self, approval_id: str, status: ApprovalStatus, decided_by: str) -> bool:
        """Record a decision on a pending approval. False if it was not pending any more: of two
        deciders at once, in any processes, exactly one gets True."""
        ...

    def expire_approvals(self) -> int:
        """Mark pending approvals past their deadline as expired (a timeout is a deny); return how many."""
        ...

    def list_approvals(self, *, status: ApprovalStatus | None = None, limit: int = 50) -> list[Row]:
        """Newest first."""
        ...

    def record_llm_call(self, rec: LlmCallRecord) -> int: ...

    def list_llm_calls(self, *, turn_id: str | None = None, limit: int = 100) -> list[Row]:
        """A turn's calls oldest first, or every turn's newest first."""
        ...

    def recent_call_ages(self, provider: str, *, within_s: float = 86_400.0) -> list[float]:
        """Seconds since each call to ``provider`` in the last ``within_s`` seconds (for rate limits)."""
        ...

    def usage_totals(self, *, since_hours: float = 24.0) -> list[Row]:
        """Calls, successful calls and tokens per provider and model over the last ``since_hours``."""
        ...


#: The pools whose orphaned turns this process has already swept (once per process and pool).
_swept: weakref.WeakSet[PgDatabase] = weakref.WeakSet()


def open_records(db: Database, settings: Settings) -> RecordStore:
    """The node's record store: on PostgreSQL when ``COLONY_DATABASE_URL`` is set, else in ``db``.

    On PostgreSQL the first call of a process also marks this host's orphaned turns interrupted,
    as `open_database` does for the SQLite file. Raises `StoreError` when the server cannot be used.
    """
    if settings.database_url is None:
        return SqliteRecordStore(db)
    from colony.store.pg.records import PgRecordStore  # psycopg is an optional extra
    from colony.store.pg.shared import require_pg

    pg = require_pg(settings)
    store = PgRecordStore(pg)
    if pg not in _swept:
        store.interrupt_orphaned_turns()
        _swept.add(pg)
    return store
