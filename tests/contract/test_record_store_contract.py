"""The record store's contract, run on every engine: SQLite (the node's file) and PostgreSQL.

Every test takes the `backend` fixture, parametrised over both engines, and asserts only what a
`RecordStore` promises — sessions, turns and messages that read back as written (unicode and
SQL-shaped text included) in order and in pages, orphaned turns interrupted with their approvals,
approvals decided once when two processes answer at once, expiry, model-call usage, episodes,
the tool-call audit, and no secret at rest in any text column — so whatever passes on SQLite
must pass on PostgreSQL. PostgreSQL is the suite's own private server (`pg_url`).
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from colony.llm.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolResultMessage,
    UserMessage,
    close_tool_calls,
)
from colony.store import Database, open_database
from colony.store.audit import ApprovalRecord, ApprovalStatus, LlmCallRecord, ToolCallRecord
from colony.store.pg import PgDatabase, open_pg
from colony.store.pg.records import PgRecordStore
from colony.store.records import RecordStore
from colony.store.sessions import Episode, TurnEnd
from colony.store.sqlite_records import SqliteRecordStore

#: The tables of migration 1 that the record store owns (schema_migrations is each engine's own).
TABLES = ("sessions", "turns", "messages", "episodes", "tool_calls", "approvals", "llm_calls")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HOSTILE = "'; DROP TABLE sessions; -- \" \\ %s %(x)s $1 ? :name ✓ ünïcødé 🐝 مرحبا 日本語"


@dataclass
class Backend:
    """One engine under test: its store, raw SQL for setting up what only time or a crash makes,
    and every text value it holds (for the secrets scan)."""

    name: str
    store: RecordStore
    #: Run a statement with ``?`` placeholders (rewritten for PostgreSQL).
    execute: Callable[[str, tuple[Any, ...]], object]
    #: What a separate process needs to open the same store (a file path or a URL).
    address: str
    #: Every non-null value of every text column of the record tables, with where it is.
    text_values: Callable[[], list[tuple[str, str]]]
    #: SQL that makes a timestamp ``seconds`` in the past.
    ago: Callable[[float], str]


def _sqlite_text(db: Database) -> list[tuple[str, str]]:
    found = []
    for table in TABLES:
        cols = [c["name"] for c in db.query(f"PRAGMA table_info({table})") if c["type"].upper() == "TEXT"]
        for row in db.query(f"SELECT {', '.join(cols)} FROM {table}"):
            found += [(f"{table}.{c}", str(v)) for c, v in row.items() if v is not None]
    return found


def _pg_text(db: PgDatabase) -> list[tuple[str, str]]:
    found = []
    for table in TABLES:
        cols = [r["column_name"] for r in db.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s AND data_type = 'text'", (table,))]
        for row in db.query(f"SELECT {', '.join(cols)} FROM {table}"):
            found += [(f"{table}.{c}", str(v)) for c, v in row.items() if v is not None]
    return found


def open_store(name: str, address: str) -> tuple[RecordStore, Callable[[], None]]:
    """A store on ``address`` and the function that closes it (used here and in other processes)."""
    if name == "sqlite":
        db = open_database(address)
        return SqliteRecordStore(db), db.close
    pg = open_pg(address, max_size=4)
    return PgRecordStore(pg), pg.close


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        address = str(tmp_path / "records.db")
        db = open_database(address)
        yield Backend("sqlite", SqliteRecordStore(db), db.execute, address, lambda: _sqlite_text(db),
                      lambda s: f"strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{s} seconds')")
        db.close()
        return
    address = request.getfixturevalue("pg_url")
    pg = open_pg(address, max_size=4)
    yield Backend("postgres", PgRecordStore(pg), lambda sql, params: pg.execute(sql.replace("?", "%s"), params),
                  address, lambda: _pg_text(pg), lambda s: f"now() - interval '{s} seconds'")
    pg.close()


def tick() -> None:
    """Let the clock move past the millisecond SQLite's timestamps resolve."""
    time.sleep(0.01)


# -- sessions, turns and messages ---------------------------------------------------------------


def test_a_conversation_reads_back_as_written(backend: Backend) -> None:
    store = backend.store
    sid = store.create_session(title=f"plan {HOSTILE}", surface="web", agent="ada")
    tid = store.start_turn(sid, f"read {HOSTILE}", {"task_type": "question", "note": HOSTILE})
    call = ToolCall(id="c1", name="read_file", arguments={"path": "ä.txt", "why": HOSTILE})
    messages: list[Message] = [
        UserMessage(content=f"héllo \x00 wörld {HOSTILE}"),
        AssistantMessage(content="", tool_calls=[call]),
        ToolResultMessage(tool_call_id="c1", name="read_file", content=HOSTILE, is_error=True),
        AssistantMessage(content=f"done ✓ {HOSTILE}"),
    ]
    ids = [store.add_message(sid, tid, m) for m in messages]
    assert ids == sorted(ids) and len(set(ids)) == 4
    store.finish_turn(tid, TurnEnd(status="completed", final_text=f"done ✓ {HOSTILE}", tool_calls=1,
                                   model_requests=2, prompt_tokens=30, completion_tokens=12))
    assert store.load_messages(sid) == messages
    session = store.get_session(sid)
    assert session is not None
    assert set(session) == {"id", "title", "surface", "agent", "created_at", "updated_at"}
    assert (session["title"], session["surface"], session["agent"]) == (f"plan {HOSTILE}", "web", "ada")
    assert ISO.match(session["created_at"]) and ISO.match(session["updated_at"])
    turn = store.get_turn(tid)
    assert turn is not None and turn == store.list_turns(sid)[0]
    assert set(turn) == {"id", "session_id", "status", "prompt", "perception", "final_text", "error", "tool_calls",
                         "model_requests", "prompt_tokens", "completion_tokens", "pid", "started_at", "finished_at"}
    assert (turn["status"], turn["prompt"], turn["final_text"], turn["error"]) == (
        "completed", f"read {HOSTILE}", f"done ✓ {HOSTILE}", None)
    assert (turn["tool_calls"], turn["model_requests"], turn["prompt_tokens"], turn["completion_tokens"]) == (1, 2, 30, 12)
    assert json.loads(turn["perception"]) == {"task_type": "question", "note": HOSTILE}
    assert ISO.match(turn["started_at"]) and ISO.match(turn["finished_at"]) and turn["started_at"] <= turn["finished_at"]
    assert store.get_session("ses_missing") is None and store.get_turn("turn_missing") is None
    assert store.load_messages("ses_missing") == []
    assert [s["id"] for s in store.get_sessions([sid, "ses_missing"])] == [sid]


def test_nul_in_free_text_is_kept_or_replaced_never_refused(backend: Backend) -> None:
    """PostgreSQL's text cannot hold NUL: it becomes U+FFFD there; SQLite keeps it. Neither fails."""
    store = backend.store
    sid = store.create_session(title="a\x00b")
    tid = store.start_turn(sid, "x\x00y", None)
    store.finish_turn(tid, TurnEnd(status="failed", error="e\x00r"))
    turn = store.get_turn(tid)
    session = store.get_session(sid)
    assert turn is not None and session is not None
    seen = [session["title"], turn["prompt"], turn["error"]]
    assert [v.replace("\x00", "\ufffd") for v in seen] == ["a\ufffdb", "x\ufffdy", "e\ufffdr"]


def test_sessions_list_most_recent_first_with_their_turns_in_pages(backend: Backend) -> None:
    store = backend.store
    sids = []
    for i in range(5):
        sids.append(store.create_session(title=f"s{i}"))
        tick()
    store.start_turn(sids[1], "first", None)
    tick()
    store.start_turn(sids[1], "second", None)  # activity moves s1 to the top
    tick()
    listed = store.list_sessions()
    assert [s["id"] for s in listed] == [sids[1], sids[4], sids[3], sids[2], sids[0]]
    assert [s["turns"] for s in listed] == [2, 0, 0, 0, 0]
    assert all(isinstance(s["turns"], int) for s in listed)
    pages = [store.list_sessions(limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [[s["id"] for s in p] for p in pages] == [[sids[1], sids[4]], [sids[3], sids[2]], [sids[0]], []]
    assert [t["prompt"] for t in store.list_turns(sids[1])] == ["first", "second"]
    assert store.list_turns(sids[0]) == []


def test_a_window_of_the_last_messages_is_repaired_for_the_model(backend: Backend) -> None:
    store = backend.store
    sid = store.create_session()
    call = ToolCall(id="c1", name="read_file", arguments={"path": "a"})
    messages: list[Message] = [UserMessage(content="go"), AssistantMessage(tool_calls=[call]),
                               ToolResultMessage(tool_call_id="c1", name="read_file", content="r"),
                               AssistantMessage(content="done"), UserMessage(content="again"),
                               AssistantMessage(tool_calls=[ToolCall(id="c2", name="read_file")])]
    for m in messages:
        store.add_message(sid, None, m)
    assert store.load_messages(sid, limit=4) == close_tool_calls(messages[-4:])  # the cut-off result is dropped
    whole = store.load_messages(sid)
    assert whole[:-1] == messages and isinstance(whole[-1], ToolResultMessage) and whole[-1].is_error
    assert store.load_messages(sid, limit=1)[0] == messages[-1]


def test_messages_of_concurrent_sessions_stay_apart_and_in_order(backend: Backend) -> None:
    store = backend.store
    a, b = store.create_session(), store.create_session()
    for i in range(20):
        store.add_message(a if i % 2 else b, None, UserMessage(content=f"m{i}"))
    assert [m.content for m in store.load_messages(a)] == [f"m{i}" for i in range(1, 20, 2)]
    assert [m.content for m in store.load_messages(b, limit=3)] == ["m14", "m16", "m18"]


# -- orphaned turns -------------------------------------------------------------------------------


def _approval(store: RecordStore, approval_id: str, turn_id: str | None, *, timeout_s: float = 60.0,
              arguments: Any = None, reason: str = "it writes") -> None:
    store.create_approval(ApprovalRecord(approval_id=approval_id, session_id=None, turn_id=turn_id, call_id="c",
                                         tool="write_file", arguments=arguments or {"path": "a"}, reason=reason,
                                         timeout_s=timeout_s))


def test_turns_of_a_dead_process_are_interrupted_with_their_approvals(backend: Backend) -> None:
    store = backend.store
    sid = store.create_session()
    dead, live = store.start_turn(sid, "killed", None), store.start_turn(sid, "still here", None)
    backend.execute("UPDATE turns SET pid = 999999999 WHERE id = ?", (dead,))
    _approval(store, "apr_dead", dead)
    _approval(store, "apr_live", live)
    _approval(store, "apr_none", None)  # not a turn's (governance): left to its own deadline
    assert store.interrupt_orphaned_turns() == 1
    turn = store.get_turn(dead)
    assert turn is not None and turn["status"] == "interrupted" and "stopped" in turn["error"] and turn["finished_at"]
    assert store.get_turn(live)["status"] == "running"  # type: ignore[index]
    statuses = {a["id"]: (a["status"], a["decided_by"]) for a in store.list_approvals()}
    assert statuses == {"apr_dead": ("expired", "process_stopped"), "apr_live": ("pending", None),
                        "apr_none": ("pending", None)}
    assert store.interrupt_orphaned_turns() == 0  # nothing left to do
    assert not store.decide_approval("apr_dead", "approved", "late")  # the expired answer stands


# -- approvals ------------------------------------------------------------------------------------


def test_an_approval_is_decided_once_and_reads_back(backend: Backend) -> None:
    store = backend.store
    _approval(store, "apr_1", None, arguments={"path": "ä.txt", "text": HOSTILE}, reason=HOSTILE)
    row = store.get_approval("apr_1")
    assert row is not None and (row["status"], row["decided_by"], row["decided_at"]) == ("pending", None, None)
    assert json.loads(row["arguments"]) == {"path": "ä.txt", "text": HOSTILE} and row["reason"] == HOSTILE
    assert ISO.match(row["created_at"]) and ISO.match(row["expires_at"]) and row["expires_at"] > row["created_at"]
    assert store.decide_approval("apr_1", "denied", "web")
    assert not store.decide_approval("apr_1", "approved", "surface")
    row = store.get_approval("apr_1")
    assert row is not None and (row["status"], row["decided_by"]) == ("denied", "web") and ISO.match(row["decided_at"])
    assert store.get_approval("apr_missing") is None and not store.decide_approval("apr_missing", "approved", "x")


def test_approvals_past_their_deadline_expire(backend: Backend) -> None:
    store = backend.store
    _approval(store, "apr_soon", None, timeout_s=0.05)
    tick()
    _approval(store, "apr_later", None, timeout_s=60)
    time.sleep(0.2)
    assert store.expire_approvals() == 1
    assert store.expire_approvals() == 0
    assert [a["id"] for a in store.list_approvals(status="pending")] == ["apr_later"]
    assert [(a["id"], a["decided_by"]) for a in store.list_approvals(status="expired")] == [("apr_soon", "timeout")]
    assert [a["id"] for a in store.list_approvals()] == ["apr_later", "apr_soon"]  # newest first
    assert [a["id"] for a in store.list_approvals(limit=1)] == ["apr_later"]
    assert not store.decide_approval("apr_soon", "approved", "web")  # a timeout is a deny


def _decide_all(name: str, address: str, who: str, ids: list[str], start: Any, results: Any) -> None:
    """A process answering every approval at once with another: report the ones it won."""
    store, close = open_store(name, address)
    try:
        status: ApprovalStatus = "approved" if who == "alice" else "denied"
        start.wait(30)
        results.put((who, [i for i in ids if store.decide_approval(i, status, who)]))
    finally:
        close()


def test_two_processes_answering_at_once_each_approval_has_one_winner(backend: Backend) -> None:
    ids = [f"apr_{i:03d}" for i in range(60)]
    for i in ids:
        _approval(backend.store, i, None)
    ctx = multiprocessing.get_context("forkserver")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_decide_all, args=(backend.name, backend.address, who, ids, start, results),
                         daemon=True) for who in ("alice", "bob")]
    for p in procs:
        p.start()
    won = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert set(won["alice"]).isdisjoint(won["bob"]) and sorted(won["alice"] + won["bob"]) == ids
    for row in backend.store.list_approvals(limit=100):
        winner = "alice" if row["id"] in won["alice"] else "bob"
        assert (row["status"], row["decided_by"]) == ("approved" if winner == "alice" else "denied", winner)


# -- the audit ------------------------------------------------------------------------------------


def _tool_call(store: RecordStore, session_id: str | None, tool: str, outcome: str, **kw: Any) -> int:
    return store.record_tool_call(ToolCallRecord(session_id=session_id, turn_id=None, call_id=f"c_{tool}",
                                                 tool=tool, arguments=kw.pop("arguments", {"path": "a"}),
                                                 outcome=outcome, latency_ms=1.5, approval="allow", **kw))


def test_tool_calls_filter_and_page_newest_first(backend: Backend) -> None:
    store = backend.store
    ids = [_tool_call(store, "s1" if i % 2 else "s2", "read_file" if i % 3 else "run_command",
                      "ok" if i % 4 else "error") for i in range(12)]
    first = _tool_call(store, "s1", "write_file", "ok", arguments={"path": "ä.txt", "text": HOSTILE},
                       error=HOSTILE, result_preview="✓", risk=["destructive"])
    rows = store.list_tool_calls(limit=100)
    assert [r["id"] for r in rows] == [first, *reversed(ids)]
    assert set(rows[0]) == {"id", "session_id", "turn_id", "call_id", "tool", "arguments", "outcome", "error",
                            "result_preview", "latency_ms", "approval", "risk", "created_at"}
    assert json.loads(rows[0]["arguments"]) == {"path": "ä.txt", "text": HOSTILE} and "ä.txt" in rows[0]["arguments"]
    assert (rows[0]["error"], rows[0]["result_preview"], json.loads(rows[0]["risk"])) == (HOSTILE, "✓", ["destructive"])
    assert rows[0]["latency_ms"] == 1.5 and ISO.match(rows[0]["created_at"])
    assert [r["id"] for r in store.list_tool_calls(session_id="s1", tool="read_file", limit=100)] == [
        i for n, i in reversed(list(enumerate(ids))) if n % 2 and n % 3]
    assert {r["outcome"] for r in store.list_tool_calls(outcome="error", limit=100)} == {"error"}
    page1 = store.list_tool_calls(limit=5)
    page2 = store.list_tool_calls(limit=5, before_id=page1[-1]["id"])
    assert [r["id"] for r in page1 + page2] == [first, *reversed(ids)][:10]
    assert store.list_tool_calls(tool="nope") == []


def test_model_calls_add_up_per_provider_and_model(backend: Backend) -> None:
    store = backend.store

    def call(provider: str, model: str, outcome: str = "ok", tokens: tuple[int, int] = (10, 5),
             turn_id: str | None = "t1") -> int:
        return store.record_llm_call(LlmCallRecord(session_id="s", turn_id=turn_id, provider=provider, model=model,
                                                   prompt_tokens=tokens[0], completion_tokens=tokens[1],
                                                   latency_ms=12.5, outcome=outcome,
                                                   error=None if outcome == "ok" else "refused"))

    ids = [call("openai", "gpt", tokens=(100, 20)), call("openai", "gpt", tokens=(50, 10)),
           call("openai", "gpt", "error", (0, 0), turn_id="t2"), call("local", "qwen", tokens=(7, 3))]
    old = call("openai", "gpt", tokens=(1000, 1000), turn_id="t2")
    backend.execute(f"UPDATE llm_calls SET created_at = {backend.ago(2 * 86_400)} WHERE id = ?", (old,))
    totals = store.usage_totals()
    assert totals == [
        {"provider": "openai", "model": "gpt", "calls": 3, "ok": 2, "prompt_tokens": 150, "completion_tokens": 30},
        {"provider": "local", "model": "qwen", "calls": 1, "ok": 1, "prompt_tokens": 7, "completion_tokens": 3},
    ]
    assert all(type(v) is int for row in totals for k, v in row.items() if k not in ("provider", "model"))
    assert len(store.usage_totals(since_hours=72)) == 2 and store.usage_totals(since_hours=72)[0]["calls"] == 4
    ages = store.recent_call_ages("openai")
    assert len(ages) == 3 and all(0.0 <= a < 60 for a in ages)
    assert len(store.recent_call_ages("openai", within_s=3 * 86_400)) == 4 and store.recent_call_ages("none") == []
    assert [c["id"] for c in store.list_llm_calls(turn_id="t1")] == ids[:2] + ids[3:]  # a turn's: oldest first
    newest = store.list_llm_calls(limit=2)
    assert [c["id"] for c in newest] == [old, ids[3]]
    assert (newest[1]["latency_ms"], newest[1]["error"]) == (12.5, None)
    assert store.list_llm_calls(turn_id="t2")[0]["error"] == "refused"


def test_episodes_read_back_newest_first(backend: Backend) -> None:
    store = backend.store
    a, b = store.create_session(), store.create_session()
    tid = store.start_turn(a, "p", None)
    made = [store.add_episode(Episode(session_id=a if i < 3 else b, turn_id=tid if i == 0 else None,
                                      asked=f"q{i} {HOSTILE}", done=[f"read_file → ok {i}", "✓"],
                                      outcome="success" if i % 2 else "failure", sentiment="neutral",
                                      tags=["ada", HOSTILE])) for i in range(5)]
    assert [e["id"] for e in store.list_episodes()] == list(reversed(made))
    mine = store.list_episodes(session_id=a, limit=2)
    assert [e["id"] for e in mine] == [made[2], made[1]]
    oldest = store.list_episodes(session_id=a)[-1]
    assert (oldest["turn_id"], oldest["asked"], oldest["outcome"], oldest["sentiment"]) == (
        tid, f"q0 {HOSTILE}", "failure", "neutral")
    assert json.loads(oldest["done"]) == ["read_file → ok 0", "✓"] and json.loads(oldest["tags"]) == ["ada", HOSTILE]
    assert ISO.match(oldest["created_at"])


# -- secrets at rest ------------------------------------------------------------------------------


def test_a_secret_reaches_no_text_column_whichever_path_it_came_by(backend: Backend) -> None:
    store = backend.store
    key = "sk-RecordContract0123456789abcdef"
    sid = store.create_session(title=f"deploy with {key}")
    tid = store.start_turn(sid, f"use {key} to deploy", {"prompt": f"api_key={key}", "token": key})
    call = ToolCall(id="c1", name="http_get", arguments={"url": "https://x", "api_key": key, "note": f"Bearer {key}"},
                    raw_arguments=f'{{"api_key": "{key}"}}')
    store.add_message(sid, tid, UserMessage(content=f"my key is {key}"))
    store.add_message(sid, tid, AssistantMessage(content=f"using {key}", tool_calls=[call]))
    store.add_message(sid, tid, ToolResultMessage(tool_call_id="c1", name="http_get", content=f"echo {key}"))
    store.record_tool_call(ToolCallRecord(session_id=sid, turn_id=tid, call_id="c1", tool="http_get",
                                          arguments={"headers": {"Authorization": f"Bearer {key}"}, "q": key},
                                          outcome="error", error=f"401 for {key}", result_preview=f"body {key}",
                                          latency_ms=3.0, approval="approved", risk=[]))
    _approval(store, "apr_s", tid, arguments={"password": "hunter2hunter2", "text": f"key {key}"},
              reason=f"it sends {key}")
    store.record_llm_call(LlmCallRecord(session_id=sid, turn_id=tid, provider="p", model="m", latency_ms=1.0,
                                        outcome="error", error=f"bad key {key}"))
    store.add_episode(Episode(session_id=sid, turn_id=tid, asked=f"use {key}", done=[f"http_get with {key}"],
                              outcome="failure", sentiment="negative"))
    store.finish_turn(tid, TurnEnd(status="failed", final_text=f"failed with {key}", error=f"auth {key}"))
    values = backend.text_values()
    columns = {where for where, _ in values}
    assert {"turns.prompt", "turns.perception", "messages.body", "tool_calls.arguments", "approvals.reason",
            "llm_calls.error", "episodes.done", "sessions.title"} <= columns
    leaked = [where for where, value in values if key in value or "hunter2hunter2" in value]
    assert leaked == []
    assert sum("[REDACTED]" in value for _, value in values) >= 12
