"""The SQLite queue's write path (schema migration 16 and the WAL checkpointer of `colony.tasks.store`).

- Migration 16 carries a version-14 database across: tasks in every state keep their rows and
  their whole history, which is then read through the new event chain, and keeps working.
- The chain (``tasks.last_event`` → ``task_events.prev`` → …) always finds exactly the events a
  scan of ``task_events`` finds, whatever moves a task made.
- Pages written per claim and completion stay low (the behaviour the migration is for).
- With SQLite's autocheckpoint handed to the store's checkpointer, a long drain does not grow
  the ``-wal`` file without bound, and the checkpointer's thread ends with its database.

What every store promises whatever the engine is in tests/contract/test_task_store_contract.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from colony.errors import StoreError
from colony.store import Database, open_database
from colony.store.migrations import MIGRATIONS, latest_version, migrate
from colony.tasks import SqliteTaskStore, TaskSpec, state_from_events
from colony.tasks import _wal as wal_module
from colony.tasks import store as store_module
from colony.tasks.models import TaskState
from colony.tasks.store import row_to_task


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = open_database(tmp_path / "tasks.db")
    yield d
    d.close()


def _scanned_history(db: Database, task_id: str) -> list[dict[str, Any]]:
    """A task's events the slow way: every row of task_events that names it."""
    return db.query("SELECT id, task_id, from_state, to_state, actor, reason, at, data FROM task_events "
                    "WHERE task_id = ? ORDER BY id", (task_id,))


def _as_rows(store: SqliteTaskStore, task_id: str) -> list[dict[str, Any]]:
    return [{**e.model_dump(), "data": json.dumps(e.data) if e.data is not None else None}
            for e in store.events(task_id)]


# -- migration 16 --------------------------------------------------------------------------------

#: How each task of the version-14 database got to its state (after its "posted" event).
PATHS: dict[str, list[TaskState]] = {
    "posted": [],
    "bidding": ["bidding"],
    "assigned": ["bidding", "assigned"],
    "executing": ["assigned", "executing"],
    "awaiting_approval": ["assigned", "executing", "awaiting_approval"],
    "retry_wait": ["assigned", "executing", "retry_wait"],
    "completed": ["assigned", "executing", "completed"],
    "failed": ["assigned", "executing", "failed"],
    "cancelled": ["cancelled"],
}


def _version_14(path: Path, now: float) -> Database:
    """A database as Colony left it at schema version 14, holding a task in every state.

    Written with the SQL of that version's store: rows with their leases, results, errors and
    pauses, a dependency, a subtask, checkpoints and a plan, and histories whose events are
    interleaved across tasks (as concurrent workers leave them), one with event data.
    """
    db = Database(path)
    migrate(db, [m for m in MIGRATIONS if m.version <= 14])
    assert db.scalar("PRAGMA user_version") == 14
    fields: dict[str, dict[str, Any]] = {
        "assigned": {"assignee": "agent-a"},
        "executing": {"lease_owner": "w1", "lease_token": "tok-exec", "lease_expires": now + 30, "attempts": 1},
        "awaiting_approval": {"attempts": 0, "awaiting": json.dumps({"tool": "write_file"}),
                              "awaiting_expires": now + 60, "approval": "task"},
        "retry_wait": {"attempts": 1, "not_before": now - 5, "error": "boom"},
        "completed": {"attempts": 1, "result": "done ✓"},
        "failed": {"attempts": 1, "error": "bad input"},
        "cancelled": {},
        "bidding": {},
        "posted": {},
    }
    with db.tx() as conn:
        for i, (state, extra) in enumerate(fields.items()):
            cols = {"id": f"task_{state}", "goal": f"goal of the {state} task", "state": state, "priority": i,
                    "skills": json.dumps(["py"] if state == "posted" else []), "created_at": now - 100,
                    "updated_at": now - 50, **extra}
            conn.execute(f"INSERT INTO tasks({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                         tuple(cols.values()))
        conn.execute("INSERT INTO tasks(id, goal, state, parent_id, waiting_on, created_at, updated_at) "
                     "VALUES ('task_child', 'a subtask waiting on work', 'posted', 'task_completed', 1, ?, ?)",
                     (now - 90, now - 90))
        conn.execute("INSERT INTO task_deps(task_id, depends_on) VALUES ('task_child', 'task_executing')")
        conn.execute("INSERT INTO task_checkpoints(task_id, step, kind, attempt, body, created_at) "
                     "VALUES ('task_executing', 'm0', 'model', 1, x'00ff', ?)", (now - 10,))
        conn.execute("INSERT INTO task_plan_steps(task_id, idx, title, status, updated_at) "
                     "VALUES ('task_executing', 0, 'first', 'done', ?)", (now - 10,))
        histories = {f"task_{s}": [None, "posted", *path] for s, path in PATHS.items()}
        histories["task_child"] = [None, "posted"]
        at = now - 100
        for step in range(1, max(len(h) for h in histories.values())):  # round-robin: interleaved ids
            for tid, states in histories.items():
                if step < len(states):
                    at += 1
                    data = json.dumps({"auction": "a1"}) if states[step] == "bidding" else None
                    conn.execute("INSERT INTO task_events(task_id, from_state, to_state, actor, reason, at, data) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (tid, states[step - 1], states[step], f"actor{step}", f"step {step} of {tid}", at,
                                  data))
    return db


def test_migration_16_carries_every_task_and_its_history_and_they_keep_working(tmp_path: Path) -> None:
    clock = Clock()
    db = _version_14(tmp_path / "v14.db", clock.now)
    ids = [r["id"] for r in db.query("SELECT id FROM tasks ORDER BY rowid")]
    rows = {r["id"]: r for r in db.query(f"SELECT {store_module._COLUMNS} FROM tasks")}
    history = {tid: _scanned_history(db, tid) for tid in ids}
    counts = {r["state"]: r["n"] for r in db.query("SELECT state, count(*) AS n FROM tasks GROUP BY state")}
    assert set(counts) == set(PATHS) and sum(len(h) for h in history.values()) > 20

    assert migrate(db) == latest_version()
    store = SqliteTaskStore(db, clock=clock, backoff_base_s=1.0)
    for tid in ids:
        assert store.get(tid) == row_to_task(rows[tid])  # every column as it was
        assert _as_rows(store, tid) == history[tid]  # the whole history, through the chain
        assert state_from_events(store.events(tid)) == store.get(tid).state
    assert {s: n for s, n in store.counts().items() if n} == counts
    assert db.scalar("SELECT count(*) FROM task_checkpoints") == 1 and store.load_plan("task_executing")[0].status == "done"

    # The chain as the migration built it: each event points at its task's previous one.
    linked = db.query("SELECT e.id, e.prev, (SELECT max(p.id) FROM task_events p WHERE p.task_id = e.task_id "
                      "AND p.id < e.id) AS expected FROM task_events e")
    assert all(r["prev"] == r["expected"] for r in linked)
    newest = {r["id"]: r["last_event"] for r in db.query("SELECT id, last_event FROM tasks")}
    assert newest == {tid: max(e["id"] for e in history[tid]) for tid in ids}
    indexes = {r["name"]: r["sql"] for r in db.query(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name IN ('tasks', 'task_events')")}
    assert "task_events_task" not in indexes and "WHERE state NOT IN" in indexes["tasks_state"]
    with pytest.raises(StoreError, match="append-only"):
        db.execute("UPDATE task_events SET reason = 'rewritten' WHERE task_id = 'task_completed'")
    with pytest.raises(StoreError, match="append-only"):
        db.execute("DELETE FROM task_events WHERE task_id = 'task_completed'")

    # The migrated tasks go on: the posted one (the retry_wait one is past its backoff) is claimed …
    claimed = {lease.task_id: lease for lease in iter(lambda: store.claim("w2", 10), None)}
    assert set(claimed) == {"task_posted", "task_retry_wait"}
    done = store.complete(claimed["task_posted"], "ok")
    assert [e.to_state for e in store.events("task_posted")] == ["posted", "assigned", "executing", "completed"]
    assert done.state == "completed" and done.skills == ["py"]
    # … the migrated lease still holds, and the reaper finds it once it expires …
    clock.now += 31
    assert ("task_executing", "retry_wait") in store.reap()
    # … people's actions work on migrated rows, and every history stays legal and complete.
    store.retry("task_failed")
    store.cancel("task_bidding")
    for tid in ids:
        assert _as_rows(store, tid) == _scanned_history(db, tid)
        assert state_from_events(store.events(tid)) == store.get(tid).state
    assert _as_rows(store, "task_executing")[: len(history["task_executing"])] == history["task_executing"]
    db.close()


# -- the chain -----------------------------------------------------------------------------------


def test_the_chain_finds_exactly_the_events_a_scan_finds(db: Database) -> None:
    clock = Clock()
    store = SqliteTaskStore(db, clock=clock, backoff_base_s=1.0)
    tasks = store.post_many([TaskSpec(goal=f"g{i}", max_attempts=2, approval="task" if i % 5 == 0 else "none")
                             for i in range(30)])
    store.post(TaskSpec(goal="waits", depends_on=[tasks[0].id]))
    for round_ in range(6):  # claims, completions, failures, releases, lost leases, people's actions
        leases = []
        while (lease := store.claim(f"w{round_}", 5)) is not None:
            leases.append(lease)
        for i, lease in enumerate(leases):
            if i % 4 == 0:
                store.complete(lease, "ok")
            elif i % 4 == 1:
                store.fail(lease, "boom")
            elif i % 4 == 2:
                store.release(lease, "shutting down")
        clock.now += 10
        store.reap()
        for t in store.list_tasks(states=["failed"], limit=100)[:2]:
            store.retry(t.id)
    auctioned = store.post(TaskSpec(goal="auctioned"))
    store.transition(auctioned.id, "bidding", actor="market", reason="open", data={"auction": "a1"})
    store.transition(auctioned.id, "cancelled", actor="bob", reason="not needed")
    everything = store.list_tasks(limit=1000)
    assert len(everything) == 32 and sum(len(store.events(t.id)) for t in everything) == db.scalar(
        "SELECT count(*) FROM task_events")
    for t in everything:
        assert _as_rows(store, t.id) == _scanned_history(db, t.id)
        assert state_from_events(store.events(t.id)) == t.state


# -- pages per transition ------------------------------------------------------------------------


def _counting(db: Database) -> list[int]:
    """Count the WAL's length after every commit of this thread's connection (nothing is checkpointed)."""
    conn = db.connection()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    frames = [0]

    def hook(_conn: apsw.Connection, _name: str, pages: int) -> int:
        frames[0] = pages
        return apsw.SQLITE_OK

    conn.set_wal_hook(hook)  # in place of SQLite's autocheckpoint
    return frames


def test_a_claim_and_its_completion_write_few_pages(db: Database) -> None:
    """Schema 14 wrote ~12 pages per task (the row, six indexes, four events); 16 writes ~7."""
    store = SqliteTaskStore(db, background_checkpoints=False)  # the counting hook is the only one
    frames = _counting(db)
    store.post_many([TaskSpec(goal=f"no-op task {i}") for i in range(1000)])
    start = frames[0]
    while (lease := store.claim("w", 30)) is not None:
        store.complete(lease, "ok")
    per_task = (frames[0] - start) / 1000
    assert per_task < 8.5, f"{per_task:.2f} pages per claim + complete"
    start = frames[0]
    for _ in range(50):
        store.post(TaskSpec(goal="posted alone"))
    assert (frames[0] - start) / 50 < 5.5  # ~4.5: the row, its id, the ready index, the event


# -- checkpoints off the claim path --------------------------------------------------------------


def _drain(path: Path, worker: str) -> None:
    db = Database(path)
    store = SqliteTaskStore(db)
    while (lease := store.claim(worker, 30)) is not None:
        store.complete(lease)
    db.close()


@pytest.mark.parametrize("workers", [1, 4])
def test_a_long_drain_does_not_grow_the_wal_without_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          workers: int) -> None:
    """SQLite's autocheckpoint is off on the queue's connections; the log still stays short.

    The thresholds are scaled down (250 new frames wake the checkpointer, the log is restarted
    from 1,000) so 5,000 tasks make dozens of cycles, drained by one thread or by four at once
    (four writers kept SQLite's own autocheckpoint from ever restarting the log). Without a
    restart this drain leaves a -wal file of ~150 MB; with it, the file stays within about twice
    the threshold (from there the keeper forces the restart); the assertion allows five times.
    """
    monkeypatch.setattr(wal_module, "CHECKPOINT_FRAMES", 250)
    monkeypatch.setattr(wal_module, "RESTART_FRAMES", 1000)
    path = tmp_path / "drain.db"
    db = open_database(path)
    store = SqliteTaskStore(db)
    assert db.scalar("PRAGMA wal_autocheckpoint") == 1000  # SQLite's default, until the store's first write …
    tasks = 5000
    store.post_many([TaskSpec(goal=f"no-op {i}") for i in range(tasks)])
    assert db.scalar("PRAGMA wal_autocheckpoint") == 0  # … hands the connection's checkpoints to the keeper
    frame = int(db.scalar("PRAGMA page_size")) + 24
    wal = Path(f"{path}-wal")
    largest = 0
    drains = [threading.Thread(target=_drain, args=(path, f"w{i}")) for i in range(workers)]
    for t in drains:
        t.start()
    while any(t.is_alive() for t in drains):
        largest = max(largest, wal.stat().st_size)
        time.sleep(0.002)
    assert store.counts()["completed"] == tasks
    written = tasks * 6 * frame  # at least six pages per task went through the log
    assert largest < 5 * 1000 * frame, f"the -wal file reached {largest / 1e6:.1f} MB"  # ~2,000 frames
    assert largest * 8 < written
    db.close()


def test_the_checkpointer_thread_ends_with_its_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal_module, "CHECKPOINT_FRAMES", 50)
    db = open_database(tmp_path / "t.db")
    store = SqliteTaskStore(db)
    store.post_many([TaskSpec(goal=f"no-op {i}") for i in range(100)])
    while (lease := store.claim("w", 30)) is not None:
        store.complete(lease)

    thread = wal_module.keeper_for(db)._thread
    assert thread is not None and thread.is_alive(), "the drain woke the checkpointer"
    db.close()
    thread.join(5)
    assert not thread.is_alive()
