"""Backups and restores: one consistent snapshot while other processes write, owner-only atomic
files, refusals that change nothing, a running node protected, the API and the health page."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from fastapi.testclient import TestClient

from colony.cli._common import ExitCode
from colony.config import Settings
from colony.errors import BackupError, DatabaseBusyError
from colony.llm.messages import UserMessage
from colony.node import Node
from colony.server import create_app
from colony.server.turns import ApprovalBroker
from colony.store import Database, migrate, open_database
from colony.store.backup import create_backup, last_backup, restore_backup
from colony.store.migrations import MIGRATIONS, latest_version
from colony.store.sqlite_records import SqliteRecordStore

COLONY = [sys.executable, "-m", "colony"]
TOKEN = "backup-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COLONY, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, COLUMNS="200"), stdin=subprocess.DEVNULL)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def counts(path: Path) -> dict[str, int]:
    """Row counts read straight from a database file (no Colony code in between)."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                for t in ("tasks", "memories", "tool_calls", "messages")}
    finally:
        conn.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or ".tmp-" in p.name)


# -- one snapshot under concurrent writers --------------------------------------------------------------

#: A worker process of the node: each transaction posts a task, stores a memory and writes an
#: audit row, through Colony's own store code, numbered per writer — until told to stop.
_WRITER = textwrap.dedent(
    """
    import sys, pathlib, time
    from colony.config import Settings
    from colony.memory import MemoryIn, open_memory
    from colony.store import Database, migrate, open_database
    from colony.store.audit import ToolCallRecord
    from colony.store.sqlite_records import SqliteRecordStore
    from colony.tasks import SqliteTaskStore, TaskSpec

    path, tag, stop = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    db = open_database(path)
    # Commits stay in colony.db-wal (no automatic checkpoint): a backup that copied only the main
    # file would miss them, so this test can tell a snapshot from a file copy.
    db.connection().execute("PRAGMA wal_autocheckpoint=0")
    memory = open_memory(db, Settings(memory_embedder="none"))
    tasks = SqliteTaskStore(db)
    records = SqliteRecordStore(db)
    i = 0
    while not stop.exists() or i < 5:
        with db.tx():
            tasks.post(TaskSpec(goal=f"{tag}-{i}"))
            memory.add(MemoryIn(content=f"writer {tag} wrote fact {i}"))
            records.record_tool_call(ToolCallRecord(session_id=None, turn_id=None, call_id=f"{tag}-{i}", tool="probe",
                                                    arguments={"i": i}, outcome="ok", latency_ms=1.0, approval="allowed"))
        i += 1
        time.sleep(0.005)  # a busy node, not a benchmark: the WAL stays a few megabytes
        if i == 5:
            print("ready", flush=True)
    db.close()
    print(i, flush=True)
    """
)


def _numbers(path: Path) -> dict[str, dict[str, list[int]]]:
    """Per table, per writer: the sequence numbers present (so gaps and torn transactions show)."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    found: dict[str, dict[str, list[int]]] = {"tasks": {}, "memories": {}, "tool_calls": {}}
    try:
        for goal, in conn.execute("SELECT goal FROM tasks"):
            tag, n = str(goal).split("-")
            found["tasks"].setdefault(tag, []).append(int(n))
        for content, in conn.execute("SELECT content FROM memories"):
            words = str(content).split()
            found["memories"].setdefault(words[1], []).append(int(words[-1]))
        for call_id, in conn.execute("SELECT call_id FROM tool_calls"):
            tag, n = str(call_id).split("-")
            found["tool_calls"].setdefault(tag, []).append(int(n))
    finally:
        conn.close()
    return {table: {tag: sorted(ns) for tag, ns in by_tag.items()} for table, by_tag in found.items()}


def test_a_backup_under_concurrent_writers_is_one_snapshot_and_restores_identical_counts(
    settings: Settings, tmp_path: Path,
) -> None:
    db = open_database(settings.db_path)
    records = SqliteRecordStore(db)
    sid = records.create_session()
    with db.tx():  # ~12 MB of history, so the copy takes several steps while the writers write
        for i in range(3000):
            records.add_message(sid, None, UserMessage(content=f"history {i} " + "x" * 4000))
    db.close()

    stop = tmp_path / "stop"
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(settings.db_path), tag, str(stop)],
                                stdout=subprocess.PIPE, text=True) for tag in ("a", "b", "c")]
    try:
        for w in writers:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        live = open_database(settings.db_path)
        grew_during_copy: list[int] = []

        def progress(done: int, total: int) -> None:
            # Between two steps of the copy, wait until the writers have committed more work:
            # the snapshot must hold regardless.
            if done < total and not grew_during_copy:
                start = int(live.scalar("SELECT COUNT(*) FROM tasks"))
                deadline = time.monotonic() + 20
                while int(live.scalar("SELECT COUNT(*) FROM tasks")) < start + 15 and time.monotonic() < deadline:
                    time.sleep(0.02)
                grew_during_copy.append(int(live.scalar("SELECT COUNT(*) FROM tasks")) - start)

        target = tmp_path / "snapshot.db"
        committed_before = int(live.scalar("SELECT COUNT(*) FROM tasks"))
        info = create_backup(settings.db_path, target, progress=progress)
        committed_after = int(live.scalar("SELECT COUNT(*) FROM tasks"))
        live.close()
    finally:
        stop.touch()
        written = [int(w.communicate(timeout=60)[0].split()[-1]) for w in writers]
    assert all(w.returncode == 0 for w in writers)
    assert grew_during_copy and grew_during_copy[0] >= 15  # the writers really wrote during the copy

    snap = counts(target)
    final = counts(settings.db_path)
    assert final["tasks"] == sum(written) == final["memories"] == final["tool_calls"]
    # One snapshot: every writer's transactions are all in or all out, and none is half in.
    assert snap["tasks"] == snap["memories"] == snap["tool_calls"] < final["tasks"]
    # …taken when the backup began: everything committed before it (even if only in the WAL),
    # and none of what the writers committed while it copied.
    assert committed_before <= snap["tasks"] < committed_after
    numbers = _numbers(target)
    assert set(numbers["tasks"]) == {"a", "b", "c"}
    for tag, tasks_seen in numbers["tasks"].items():
        assert tasks_seen == list(range(len(tasks_seen))), tag  # a gap-free prefix of what it wrote
        assert numbers["memories"][tag] == tasks_seen == numbers["tool_calls"][tag], tag
    assert snap["messages"] == 3000
    assert info.counts["tasks"] == snap["tasks"] and info.counts["memories"] == snap["memories"]
    assert mode(target) == 0o600 and leftovers(tmp_path) == []

    # Restore it as a person would: the CLI, the writers gone.
    r = cli("restore", str(target), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert counts(settings.db_path) == snap
    assert report["counts"]["tasks"] == snap["tasks"] and report["counts"]["tool_calls"] == snap["tool_calls"]
    aside = Path(report["kept_aside"])
    assert aside.name.startswith("colony.db.before-restore-") and counts(aside) == final  # nothing lost
    reopened = open_database(settings.db_path)  # the node opens the restored file normally
    try:
        assert reopened.scalar("PRAGMA quick_check") == "ok"
        assert int(reopened.scalar("SELECT COUNT(*) FROM memories_fts")) == snap["memories"]
    finally:
        reopened.close()


# -- the CLI: owner-only, atomic, recorded -----------------------------------------------------------------


def _node_with_rows(settings: Settings, n: int = 3) -> None:
    db = open_database(settings.db_path)
    records = SqliteRecordStore(db)
    sid = records.create_session()
    for i in range(n):
        records.add_message(sid, None, UserMessage(content=f"row {i}"))
    db.close()


def test_colony_backup_writes_owner_only_atomically_refuses_to_overwrite_and_lists(
    settings: Settings, tmp_path: Path,
) -> None:
    _node_with_rows(settings)
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o755)
    target = out / "monday.db"
    r = cli("backup", str(target), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["path"] == str(target) and info["size_bytes"] == target.stat().st_size
    assert info["schema_version"] == latest_version() and info["counts"]["messages"] == 3
    assert mode(target) == 0o600 and leftovers(out) == []
    assert not Path(f"{target}-wal").exists()  # a standalone file: nothing else to carry along

    inode, data = target.stat().st_ino, target.read_bytes()
    again = cli("backup", str(target))
    assert again.returncode == ExitCode.USAGE and "--force" in again.stderr
    assert target.stat().st_ino == inode and target.read_bytes() == data  # untouched

    _node_with_rows(settings, 2)
    forced = cli("backup", str(target), "--force", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["counts"]["messages"] == 5
    assert mode(target) == 0o600 and leftovers(out) == []

    default = cli("backup", "--json")
    made = Path(json.loads(default.stdout)["path"])
    assert made.parent == settings.home / "backups" and mode(made.parent) == 0o700 and mode(made) == 0o600

    listed = json.loads(cli("backup", "--list", "--json").stdout)["backups"]
    assert [b["path"] for b in listed] == [str(made), str(target), str(target)]
    assert mode(settings.home / "backups.jsonl") == 0o600
    target.unlink()
    assert [b["present"] for b in json.loads(cli("backup", "--list", "--json").stdout)["backups"]] == [True, False, False]
    assert "colony restore" in cli("backup", "--help").stdout and "Examples" in cli("restore", "--help").stdout


def test_backup_of_a_node_without_a_database_says_so(settings: Settings, tmp_path: Path) -> None:
    r = cli("backup", str(tmp_path / "b.db"))
    assert r.returncode == ExitCode.STORE and "no database" in r.stderr
    assert not (tmp_path / "b.db").exists()


def test_a_damaged_database_is_not_kept_as_a_backup(settings: Settings, tmp_path: Path) -> None:
    db = open_database(settings.db_path)
    records = SqliteRecordStore(db)
    sid = records.create_session()
    with db.tx():
        for i in range(300):
            records.add_message(sid, None, UserMessage(content=f"message {i} " * 20))
    db.close()
    conn = apsw.Connection(str(settings.db_path))
    page = int(conn.execute("SELECT max(pageno) FROM dbstat WHERE name = 'messages'").fetchone()[0])  # type: ignore[index]
    conn.close()
    with open(settings.db_path, "r+b") as fh:
        fh.seek((page - 1) * 4096)
        fh.write(b"\xff" * 4096)
    with pytest.raises(BackupError, match="damaged"):
        create_backup(settings.db_path, tmp_path / "bad.db")
    assert not (tmp_path / "bad.db").exists() and leftovers(tmp_path) == []
    assert last_backup(settings.home) is None


# -- restore: refusals change nothing -----------------------------------------------------------------------


def _make(path: Path, sql: str) -> Path:
    conn = apsw.Connection(str(path))
    conn.execute(sql)
    conn.close()
    return path


def _colony_copy(settings: Settings, path: Path, sql: str) -> Path:
    create_backup(settings.db_path, path)
    return _make(path, sql)


def _bad_files(settings: Settings, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 200)
    damaged = tmp_path / "damaged.db"
    create_backup(settings.db_path, damaged)
    with open(damaged, "r+b") as fh:
        fh.seek(100)
        fh.write(os.urandom(4000))
    first = MIGRATIONS[0]
    return {
        "missing": (tmp_path / "nope.db", "no file"),
        "garbage": (garbage, "not a usable SQLite database"),
        "plain sqlite": (_make(tmp_path / "plain.db", "CREATE TABLE notes(x)"), "not a Colony database"),
        "damaged": (damaged, "not a usable SQLite database"),
        "newer colony": (_colony_copy(settings, tmp_path / "newer.db",
                                      f"INSERT INTO schema_migrations(version, name) VALUES ({latest_version() + 1}, 'x');"
                                      f"PRAGMA user_version = {latest_version() + 1}"), "newer Colony"),
        "foreign migrations": (_colony_copy(settings, tmp_path / "foreign.db",
                                            f"UPDATE schema_migrations SET name = 'other app' WHERE version = {first.version}"),
                               "not a database of this Colony"),
        "no migration rows": (_colony_copy(settings, tmp_path / "norows.db", "DELETE FROM schema_migrations"),
                              "records no migrations"),
    }


def test_restore_refuses_what_is_not_a_colony_database_of_a_known_schema_and_changes_nothing(
    settings: Settings, tmp_path: Path,
) -> None:
    _node_with_rows(settings, 4)
    before = counts(settings.db_path)
    data = settings.db_path.read_bytes()
    for name, (path, message) in _bad_files(settings, tmp_path).items():
        r = cli("restore", str(path))
        assert r.returncode == ExitCode.STORE, (name, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
        assert settings.db_path.read_bytes() == data, name
        assert not list(settings.home.glob("colony.db.before-restore-*")), name
        assert leftovers(settings.home) == [], name
    assert counts(settings.db_path) == before


def test_restore_refuses_while_a_node_has_the_database_open(settings: Settings, tmp_path: Path) -> None:
    _node_with_rows(settings)
    backup = tmp_path / "b.db"
    create_backup(settings.db_path, backup)
    _node_with_rows(settings, 2)  # the node moved on since the backup
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from colony.store import open_database; "
         "db = open_database(sys.argv[1]); db.scalar('SELECT 1'); print('open', flush=True); time.sleep(600)",
         str(settings.db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        r = cli("restore", str(backup))
        assert r.returncode == ExitCode.BUSY, r.stderr
        assert f"process {holder.pid}" in r.stderr and "Stop it" in r.stderr
        assert counts(settings.db_path)["messages"] == 5
        assert not list(settings.home.glob("colony.db.before-restore-*"))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
    r = cli("restore", str(backup))  # the node is gone: now it may
    assert r.returncode == 0, r.stderr and counts(settings.db_path)["messages"] == 3


def test_restore_in_the_same_process_as_an_open_node_is_refused(settings: Settings, tmp_path: Path) -> None:
    _node_with_rows(settings)
    create_backup(settings.db_path, tmp_path / "b.db")
    db = open_database(settings.db_path)
    try:
        with pytest.raises(DatabaseBusyError):
            restore_backup(tmp_path / "b.db", settings.db_path)
    finally:
        db.close()


def test_restore_keeps_aside_writes_still_in_the_write_ahead_log(settings: Settings, tmp_path: Path) -> None:
    """A node killed with its last commits only in colony.db-wal: they go aside with the old database,
    and that old WAL is never replayed into the restored one."""
    _node_with_rows(settings, 2)
    backup = tmp_path / "b.db"
    create_backup(settings.db_path, backup)
    killed = subprocess.run(
        [sys.executable, "-c", "import os, sys; from colony.store import open_database; "
         "from colony.store.sqlite_records import SqliteRecordStore; from colony.llm.messages import UserMessage; "
         "db = open_database(sys.argv[1]); records = SqliteRecordStore(db); sid = records.create_session(); "
         "[records.add_message(sid, None, UserMessage(content=f'late {i}')) for i in range(7)]; os._exit(0)",
         str(settings.db_path)], timeout=60)
    assert killed.returncode == 0
    assert Path(f"{settings.db_path}-wal").stat().st_size > 0  # the late rows live only in the WAL
    report = restore_backup(backup, settings.db_path)
    assert report.kept_aside is not None
    assert counts(Path(report.kept_aside))["messages"] == 9
    assert counts(settings.db_path)["messages"] == 2
    assert not Path(f"{settings.db_path}-wal").exists() or Path(f"{settings.db_path}-wal").stat().st_size == 0
    assert mode(settings.db_path) == 0o600 and mode(Path(report.kept_aside)) == 0o600


def test_restore_into_a_new_home_and_an_older_schema_is_upgraded_on_open(settings: Settings, tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    older = Database(old)  # an older Colony's database: every migration but the newest
    migrate(older, MIGRATIONS[:-1])
    older.close()
    newest = MIGRATIONS[-1]
    report = restore_backup(old, settings.db_path)
    assert report.kept_aside is None and report.schema_version == newest.version - 1
    assert mode(settings.home) == 0o700 and mode(settings.db_path) == 0o600
    reopened = open_database(settings.db_path)
    try:
        assert reopened.scalar("PRAGMA user_version") == newest.version
    finally:
        reopened.close()


# -- the API and the health page ---------------------------------------------------------------------------


@pytest.fixture
def client(settings: Settings) -> Iterator[tuple[TestClient, Node]]:
    broker = ApprovalBroker()
    node = Node(settings, approver=broker)
    node.records.create_session(title="before the backup")
    app = create_app(node, broker, token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c, node


def _error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) >= {"code", "message"} and body["message"]
    return body


def test_api_backup_writes_only_inside_the_backups_folder(client: tuple[TestClient, Node], tmp_path: Path) -> None:
    c, node = client
    home = node.settings.home
    assert c.get("/api/v1/backup", headers=AUTH).json()["last"] is None

    made = c.post("/api/v1/backup", headers=AUTH, json={"name": "nightly.db"})
    assert made.status_code == 201, made.text
    info = made.json()["backup"]
    assert info["path"] == str(home / "backups" / "nightly.db") and info["counts"]["sessions"] == 1
    assert mode(home / "backups" / "nightly.db") == 0o600 and mode(home / "backups") == 0o700

    default = c.post("/api/v1/backup", headers=AUTH)
    assert default.status_code == 201 and Path(default.json()["backup"]["path"]).parent == home / "backups"

    listed = c.get("/api/v1/backup", headers=AUTH).json()
    assert listed["last"]["path"] == default.json()["backup"]["path"]
    assert [b["path"] for b in listed["backups"]] == [default.json()["backup"]["path"], info["path"]]
    assert listed["directory"] == str(home / "backups")

    taken = _error(c.post("/api/v1/backup", headers=AUTH, json={"name": "nightly.db"}), 409)
    assert taken["code"] == "backup_exists"
    assert c.post("/api/v1/backup", headers=AUTH, json={"name": "nightly.db", "overwrite": True}).status_code == 201

    outside = tmp_path / "stolen.db"
    for body in ({"name": "../stolen.db"}, {"name": str(outside)}, {"name": ".hidden.db"}, {"name": "a/b.db"},
                 {"name": "x.txt"}, {"path": str(outside)}, {"name": "n.db", "path": str(outside)}):
        refused = _error(c.post("/api/v1/backup", headers=AUTH, json=body), 422)
        assert refused["code"] == "invalid_request", body
    assert not outside.exists() and not (home / "stolen.db").exists()
    assert sorted(p.name for p in (home / "backups").iterdir())[-1] == "nightly.db"

    assert _error(c.post("/api/v1/backup", json={}), 401)["code"] == "unauthorized"
    assert c.get("/api/v1/backup").status_code == 401


def test_health_page_shows_the_last_backup(client: tuple[TestClient, Node]) -> None:
    c, node = client
    r = c.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303
    page = c.get("/health").text
    assert 'id="last-backup"' in page and "never" in page
    info = c.post("/api/v1/backup", headers=AUTH, json={"name": "for-the-page.db"}).json()["backup"]
    page = c.get("/health").text
    shown = page.split('id="last-backup">', 1)[1].split("</dd>", 1)[0]
    assert info["path"] in shown and info["created_at"][:19].replace("T", " ") in shown and "KiB" in shown
    (node.settings.home / "backups" / "for-the-page.db").unlink()
    assert "file missing" in c.get("/health").text.split('id="last-backup">', 1)[1].split("</dd>", 1)[0]
