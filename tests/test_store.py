"""The store: migrations, schema versions, and concurrent writers from threads and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from colony.errors import SchemaTooNewError, StoreError
from colony.llm.messages import AssistantMessage, ToolCall, ToolResultMessage, UserMessage
from colony.store import Database, latest_version, migrate, open_database, schema_version
from colony.store.migrations import MIGRATIONS, Migration
from colony.store.sqlite_records import SqliteRecordStore


def test_new_database_is_migrated_wal_and_has_foreign_keys(tmp_path: Path) -> None:
    db = open_database(tmp_path / "n.db")
    assert schema_version(db) == latest_version()
    assert db.scalar("PRAGMA journal_mode") == "wal"
    assert db.scalar("PRAGMA foreign_keys") == 1
    rows = db.query("SELECT version, name FROM schema_migrations")
    assert [r["version"] for r in rows] == [m.version for m in MIGRATIONS]
    with pytest.raises(StoreError):  # a message for a session that does not exist
        db.execute("INSERT INTO messages(session_id, kind, body) VALUES ('nope', 'user', '[]')")
    db.close()


def test_upgrading_an_old_database_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    migrate(db, MIGRATIONS[:1])
    sid = SqliteRecordStore(db).create_session(title="kept")
    extra = Migration(
        latest_version() + 1,
        "test: add a column",
        lambda conn: conn.execute("ALTER TABLE sessions ADD COLUMN colour TEXT DEFAULT 'blue'"),
    )
    assert migrate(db, [*MIGRATIONS, extra]) == extra.version
    row = db.one("SELECT title, colour FROM sessions WHERE id = ?", (sid,))
    assert row == {"title": "kept", "colour": "blue"}
    assert migrate(db, [*MIGRATIONS, extra]) == extra.version  # idempotent
    db.close()


def test_migrations_apply_in_version_order_whatever_the_list_order(tmp_path: Path) -> None:
    # Capabilities append their migrations independently; the list order must not matter.
    db = Database(tmp_path / "order.db")
    first = MIGRATIONS[0]
    second = Migration(50, "t", lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
    third = Migration(51, "t.y", lambda conn: conn.execute("ALTER TABLE t ADD COLUMN y TEXT"))
    assert migrate(db, [third, first, second]) == 51
    assert [r["name"] for r in db.query("PRAGMA table_info(t)")] == ["x", "y"]
    db.close()


def test_a_migration_number_used_twice_is_refused(tmp_path: Path) -> None:
    db = Database(tmp_path / "dup.db")
    a = Migration(1, "a", lambda conn: conn.execute("CREATE TABLE a (x INTEGER)"))
    b = Migration(1, "b", lambda conn: conn.execute("CREATE TABLE b (x INTEGER)"))
    with pytest.raises(StoreError, match="used twice"):
        migrate(db, [a, b])
    assert schema_version(db) == 0
    db.close()


def test_database_newer_than_code_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = open_database(path)
    db.execute(f"PRAGMA user_version = {latest_version() + 5}")
    db.close()
    with pytest.raises(SchemaTooNewError) as info:
        open_database(path)
    assert "newer Colony" in str(info.value) and str(latest_version() + 5) in str(info.value)


def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    db = open_database(tmp_path / "r.db")
    sid = SqliteRecordStore(db).create_session()

    def change_then_fail() -> None:
        with db.tx() as conn:
            conn.execute("UPDATE sessions SET title = 'changed' WHERE id = ?", (sid,))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert db.scalar("SELECT title FROM sessions WHERE id = ?", (sid,)) == ""
    db.close()


def test_messages_round_trip_with_unicode_and_nul(tmp_path: Path) -> None:
    db = open_database(tmp_path / "m.db")
    records = SqliteRecordStore(db)
    sid = records.create_session()
    msgs = [
        UserMessage(content="héllo \x00 wörld 🐝 مرحبا"),
        AssistantMessage(
            content="", tool_calls=[ToolCall(id="c1", name="read_file", arguments={"path": "ä.txt"})]
        ),
        ToolResultMessage(
            tool_call_id="c1", name="read_file", content="'; DROP TABLE sessions; --", is_error=True
        ),
    ]
    for m in msgs:
        records.add_message(sid, None, m)
    assert records.load_messages(sid) == msgs
    assert records.load_messages(sid, limit=2) == msgs[1:]
    db.close()


def test_concurrent_writer_threads_lose_nothing(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    records = SqliteRecordStore(db)
    sid = records.create_session()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(150):
                records.add_message(sid, None, UserMessage(content=f"{n}-{i}"))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    contents = {m.content for m in records.load_messages(sid)}
    assert contents == {f"{n}-{i}" for n in range(8) for i in range(150)}
    db.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from colony.store import open_database
    from colony.store.sqlite_records import SqliteRecordStore
    from colony.llm.messages import UserMessage
    db = open_database(sys.argv[1])
    records = SqliteRecordStore(db)
    sid, tag, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    print("ready", flush=True)
    for i in range(n):
        records.add_message(sid, None, UserMessage(content=f"{tag}-{i}"))
    db.close()
    """
)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    db = open_database(path)
    records = SqliteRecordStore(db)
    sid = records.create_session()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), sid, tag, "400"], stdout=subprocess.DEVNULL
        )
        for tag in ("a", "b", "c")
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    contents = [m.content for m in records.load_messages(sid)]
    assert len(contents) == 1200
    assert set(contents) == {f"{t}-{i}" for t in "abc" for i in range(400)}
    db.close()


def test_process_killed_mid_write_leaves_a_clean_database(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    db = open_database(path)
    records = SqliteRecordStore(db)
    sid = records.create_session()
    db.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), sid, "k", "1000000"], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    db = open_database(path)
    records = SqliteRecordStore(db)
    assert db.scalar("PRAGMA quick_check") == "ok"
    written = [m.content for m in records.load_messages(sid)]
    assert len(written) > 0
    # Committed rows form a gap-free prefix: nothing committed was lost.
    assert written == [f"k-{i}" for i in range(len(written))]
    db.close()


def test_orphaned_running_turn_is_marked_interrupted(tmp_path: Path) -> None:
    db = open_database(tmp_path / "o.db")
    records = SqliteRecordStore(db)
    sid = records.create_session()
    tid = records.start_turn(sid, "hi", None)
    db.execute("UPDATE turns SET pid = 999999999 WHERE id = ?", (tid,))
    live = records.start_turn(sid, "still running here", None)  # our own pid: alive
    assert records.interrupt_orphaned_turns() == 1
    assert records.get_turn(tid)["status"] == "interrupted"  # type: ignore[index]
    assert records.get_turn(live)["status"] == "running"  # type: ignore[index]
    db.close()


def test_unwritable_location_gives_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        open_database(blocker / "sub" / "db.sqlite")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a database"):
        open_database(path)


def test_acp_rows_keep_their_order_and_lose_the_foreign_key_to_sessions(tmp_path: Path) -> None:
    """Migration 15: an editor's session may live on PostgreSQL while its folder stays in this file."""
    db = Database(tmp_path / "acp.db")
    migrate(db, [m for m in MIGRATIONS if m.version <= 14])
    records = SqliteRecordStore(db)
    sids = [records.create_session(title=f"s{i}") for i in range(3)]
    for sid in reversed(sids):
        db.execute("INSERT INTO acp_sessions(id, cwd, mode) VALUES (?, '/w', 'ask')", (sid,))
    assert db.query("PRAGMA foreign_key_list(acp_sessions)") != []
    migrate(db)
    assert db.query("PRAGMA foreign_key_list(acp_sessions)") == []
    assert [r["id"] for r in db.query("SELECT id FROM acp_sessions ORDER BY rowid")] == list(reversed(sids))
    db.execute("INSERT INTO acp_sessions(id, cwd) VALUES ('ses_on_postgres', '/w')")  # no local session row
    db.close()
