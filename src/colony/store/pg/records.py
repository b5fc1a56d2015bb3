"""`RecordStore` on PostgreSQL: the conversation records and their audit that many nodes share.

Same contract as `SqliteRecordStore` (the contract suite runs the same assertions on both); what
changes is how each guarantee is kept when writers are not serialised by one file lock:

- **approvals are decided once**: a decision, a timeout and a process-stopped sweep are each one
  ``UPDATE … WHERE status = 'pending'``. PostgreSQL locks the row, and a second writer waiting
  on it re-checks the condition against the committed row (READ COMMITTED), so it finds the
  approval decided and changes nothing: of two deciders in any processes, exactly one wins;
- **clocks**: deadlines, usage windows and every timestamp come from the server's ``now()``, so
  nodes whose clocks drift still agree on when an approval expired;
- **orphaned turns**: a turn row names its host as well as its pid, and a starting node marks
  only its own host's dead turns interrupted — another machine's pids mean nothing here;
- **rows read as on SQLite**: explicit column lists (no ``seq``, no ``host``) and timestamps
  rendered as SQLite's ISO text, so the API, the web pages and the CLI never ask which engine.

Writes that return an id use ``RETURNING``; each single statement runs in autocommit (atomic on
its own), and the two-statement writes (starting a turn, the orphan sweep) run in `tx()`.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from colony.llm.messages import Message
from colony.store._db import Row
from colony.store.audit import ApprovalRecord, ApprovalStatus, LlmCallRecord, ToolCallRecord, tool_call_filter
from colony.store.pg._db import PgDatabase
from colony.store.sessions import (
    ORPHANED_TURN_ERROR,
    Episode,
    TurnEnd,
    message_row,
    messages_from_bodies,
    pid_alive,
    session_row,
    turn_row,
)

__all__ = ["PgRecordStore"]

#: SQLite's timestamp text: ``2025-01-31T12:00:00.123Z``.
_ISO = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
_TIMES = frozenset({"created_at", "updated_at", "started_at", "finished_at", "expires_at", "decided_at"})


def _columns(names: str, alias: str = "") -> str:
    """A select list in SQLite's column order, timestamps rendered as SQLite writes them."""
    return ", ".join(f"to_char({alias}{n} AT TIME ZONE 'UTC', '{_ISO}') AS {n}" if n in _TIMES else f"{alias}{n}"
                     for n in names.split())


_SESSION = "id title surface agent created_at updated_at"
_TURN = ("id session_id status prompt perception final_text error tool_calls model_requests prompt_tokens "
         "completion_tokens pid started_at finished_at")
_EPISODE = _columns("id session_id turn_id asked done outcome sentiment tags created_at")
_TOOL_CALL = _columns("id session_id turn_id call_id tool arguments outcome error result_preview latency_ms approval "
                      "risk created_at")
_APPROVAL = _columns("id session_id turn_id call_id tool arguments reason status decided_by created_at expires_at "
                     "decided_at")
_LLM_CALL = _columns("id session_id turn_id provider model prompt_tokens completion_tokens latency_ms outcome error "
                     "created_at")


def _text(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with NUL characters (which PostgreSQL's text refuses) written as U+FFFD."""
    return {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in row.items()}


class PgRecordStore:
    """`RecordStore` over a PostgreSQL pool. ``host`` names this machine in ``turns.host``."""

    def __init__(self, db: PgDatabase, *, host: str | None = None) -> None:
        self.db = db
        self.host = host if host is not None else socket.gethostname()

    def _insert(self, sql: str, row: dict[str, Any]) -> int:
        inserted = self.db.one(sql + " RETURNING id", _text(row))
        assert inserted is not None  # INSERT … RETURNING returns the row it inserted
        return int(inserted["id"])

    # -- sessions and turns ----------------------------------------------------------------------
    def create_session(self, *, title: str = "", surface: str = "cli", agent: str = "colony") -> str:
        row = session_row(title=title, surface=surface, agent=agent)
        self.db.execute("INSERT INTO sessions(id, title, surface, agent) "
                        "VALUES (%(id)s, %(title)s, %(surface)s, %(agent)s)", _text(row))
        return str(row["id"])

    def get_session(self, session_id: str) -> Row | None:
        return self.db.one(f"SELECT {_columns(_SESSION)} FROM sessions WHERE id = %s", (session_id,))

    def get_sessions(self, session_ids: Sequence[str]) -> list[Row]:
        return self.db.query(f"SELECT {_columns(_SESSION)} FROM sessions WHERE id = ANY(%s)", (list(session_ids),))

    def list_sessions(self, *, limit: int = 20, offset: int = 0) -> list[Row]:
        return self.db.query(
            f"""SELECT {_columns(_SESSION, 's.')}, (SELECT count(*) FROM turns t WHERE t.session_id = s.id) AS turns
                FROM sessions s ORDER BY s.updated_at DESC, s.seq DESC LIMIT %s OFFSET %s""",
            (limit, offset),
        )

    def start_turn(self, session_id: str, prompt: str, perception: dict[str, Any] | None) -> str:
        row = _text({**turn_row(session_id, prompt, perception), "host": self.host})
        with self.db.tx() as conn:
            conn.execute(
                """INSERT INTO turns(id, session_id, status, prompt, perception, pid, host)
                   VALUES (%(id)s, %(session_id)s, 'running', %(prompt)s, %(perception)s, %(pid)s, %(host)s)""",
                row,
            )
            conn.execute("UPDATE sessions SET updated_at = now() WHERE id = %s", (session_id,))
        return str(row["id"])

    def finish_turn(self, turn_id: str, end: TurnEnd) -> None:
        self.db.execute(
            """UPDATE turns SET status = %(status)s, final_text = %(final_text)s, error = %(error)s,
               tool_calls = %(tool_calls)s, model_requests = %(model_requests)s, prompt_tokens = %(prompt_tokens)s,
               completion_tokens = %(completion_tokens)s, finished_at = now() WHERE id = %(id)s""",
            _text(end.at_rest(turn_id)),
        )

    def get_turn(self, turn_id: str) -> Row | None:
        return self.db.one(f"SELECT {_columns(_TURN)} FROM turns WHERE id = %s", (turn_id,))

    def list_turns(self, session_id: str) -> list[Row]:
        return self.db.query(f"SELECT {_columns(_TURN)} FROM turns WHERE session_id = %s ORDER BY started_at, seq",
                             (session_id,))

    def interrupt_orphaned_turns(self) -> int:
        rows = self.db.query("SELECT id, pid, host FROM turns WHERE status = 'running' AND (host = %s OR host IS NULL)",
                             (self.host,))
        dead = [r["id"] for r in rows if r["host"] is None or r["pid"] is None or not pid_alive(int(r["pid"]))]
        with self.db.tx() as conn:
            interrupted = conn.execute(
                """UPDATE turns SET status = 'interrupted', error = %s, finished_at = now()
                   WHERE id = ANY(%s) AND status = 'running'""",
                (ORPHANED_TURN_ERROR, dead),
            ).rowcount
            conn.execute(
                """UPDATE approvals a SET status = 'expired', decided_by = 'process_stopped', decided_at = now()
                   WHERE a.status = 'pending' AND a.turn_id IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.id = a.turn_id AND t.status = 'running')"""
            )
        return interrupted

    # -- messages and episodes -------------------------------------------------------------------
    def add_message(self, session_id: str, turn_id: str | None, message: Message) -> int:
        return self._insert("INSERT INTO messages(session_id, turn_id, kind, body) "
                            "VALUES (%(session_id)s, %(turn_id)s, %(kind)s, %(body)s)",
                            message_row(session_id, turn_id, message))

    def load_messages(self, session_id: str, *, limit: int | None = None) -> list[Message]:
        if limit is None:
            rows = self.db.query("SELECT body FROM messages WHERE session_id = %s ORDER BY id", (session_id,))
        else:
            rows = self.db.query(
                "SELECT body FROM (SELECT id, body FROM messages WHERE session_id = %s ORDER BY id DESC LIMIT %s) m "
                "ORDER BY id",
                (session_id, limit),
            )
        return messages_from_bodies(r["body"] for r in rows)

    def add_episode(self, episode: Episode) -> int:
        return self._insert(
            """INSERT INTO episodes(session_id, turn_id, asked, done, outcome, sentiment, tags)
               VALUES (%(session_id)s, %(turn_id)s, %(asked)s, %(done)s, %(outcome)s, %(sentiment)s, %(tags)s)""",
            episode.at_rest(),
        )

    def list_episodes(self, *, session_id: str | None = None, limit: int = 50) -> list[Row]:
        if session_id:
            return self.db.query(f"SELECT {_EPISODE} FROM episodes WHERE session_id = %s ORDER BY id DESC LIMIT %s",
                                 (session_id, limit))
        return self.db.query(f"SELECT {_EPISODE} FROM episodes ORDER BY id DESC LIMIT %s", (limit,))

    # -- the audit -------------------------------------------------------------------------------
    def record_tool_call(self, rec: ToolCallRecord) -> int:
        return self._insert(
            """INSERT INTO tool_calls(session_id, turn_id, call_id, tool, arguments, outcome, error,
               result_preview, latency_ms, approval, risk)
               VALUES (%(session_id)s, %(turn_id)s, %(call_id)s, %(tool)s, %(arguments)s, %(outcome)s, %(error)s,
               %(result_preview)s, %(latency_ms)s, %(approval)s, %(risk)s)""",
            rec.at_rest(),
        )

    def list_tool_calls(self, *, session_id: str | None = None, tool: str | None = None,
                        outcome: str | None = None, limit: int = 50, before_id: int | None = None) -> list[Row]:
        clause, params = tool_call_filter("%s", session_id=session_id, tool=tool, outcome=outcome, before_id=before_id)
        return self.db.query(f"SELECT {_TOOL_CALL} FROM tool_calls {clause} ORDER BY id DESC LIMIT %s",
                             (*params, limit))

    def create_approval(self, rec: ApprovalRecord) -> None:
        self.db.execute(
            """INSERT INTO approvals(id, session_id, turn_id, call_id, tool, arguments, reason, status, expires_at)
               VALUES (%(id)s, %(session_id)s, %(turn_id)s, %(call_id)s, %(tool)s, %(arguments)s, %(reason)s,
                       'pending', now() + make_interval(secs => %(timeout_s)s))""",
            _text(rec.at_rest()),
        )

    def get_approval(self, approval_id: str) -> Row | None:
        return self.db.one(f"SELECT {_APPROVAL} FROM approvals WHERE id = %s", (approval_id,))

    def decide_approval(self, approval_id: str, status: ApprovalStatus, decided_by: str) -> bool:
        return self.db.execute(
            """UPDATE approvals SET status = %s, decided_by = %s, decided_at = now()
               WHERE id = %s AND status = 'pending'""",
            (status, decided_by, approval_id),
        ) == 1

    def expire_approvals(self) -> int:
        return self.db.execute(
            """UPDATE approvals SET status = 'expired', decided_by = 'timeout', decided_at = now()
               WHERE status = 'pending' AND expires_at < now()"""
        )

    def list_approvals(self, *, status: ApprovalStatus | None = None, limit: int = 50) -> list[Row]:
        if status:
            return self.db.query(f"SELECT {_APPROVAL} FROM approvals WHERE status = %s ORDER BY created_at DESC LIMIT %s",
                                 (status, limit))
        return self.db.query(f"SELECT {_APPROVAL} FROM approvals ORDER BY created_at DESC LIMIT %s", (limit,))

    def record_llm_call(self, rec: LlmCallRecord) -> int:
        return self._insert(
            """INSERT INTO llm_calls(session_id, turn_id, provider, model, prompt_tokens, completion_tokens,
               latency_ms, outcome, error) VALUES (%(session_id)s, %(turn_id)s, %(provider)s, %(model)s,
               %(prompt_tokens)s, %(completion_tokens)s, %(latency_ms)s, %(outcome)s, %(error)s)""",
            rec.at_rest(),
        )

    def list_llm_calls(self, *, turn_id: str | None = None, limit: int = 100) -> list[Row]:
        if turn_id:
            return self.db.query(f"SELECT {_LLM_CALL} FROM llm_calls WHERE turn_id = %s ORDER BY id LIMIT %s",
                                 (turn_id, limit))
        return self.db.query(f"SELECT {_LLM_CALL} FROM llm_calls ORDER BY id DESC LIMIT %s", (limit,))

    def recent_call_ages(self, provider: str, *, within_s: float = 86_400.0) -> list[float]:
        rows = self.db.query(
            """SELECT extract(epoch FROM now() - created_at)::float8 AS age FROM llm_calls
               WHERE provider = %s AND created_at >= now() - make_interval(secs => %s)""",
            (provider, float(within_s)),
        )
        return [max(0.0, float(r["age"])) for r in rows]

    def usage_totals(self, *, since_hours: float = 24.0) -> list[Row]:
        return self.db.query(
            """SELECT provider, model, count(*) AS calls, count(*) FILTER (WHERE outcome = 'ok') AS ok,
                      sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens
               FROM llm_calls WHERE created_at >= now() - make_interval(secs => %s)
               GROUP BY provider, model ORDER BY calls DESC""",
            (float(since_hours) * 3600.0,),
        )
