"""The task engine's pieces that are not a store's contract: the transition table, backoff, the
SQLite-only helpers (the `Database` handle accepted by checkpoints and plans, dbstat sizes, apsw),
and the modules' exports.

What every task store promises — transitions, leases, the reaper, dependencies, checkpoints,
plans, approvals, contention and a hypothesis state machine — is tested once for SQLite and
PostgreSQL alike in tests/contract/test_task_store_contract.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from colony.errors import LeaseLostError
from colony.store import Database, open_database
from colony.tasks import TRANSITIONS, SqliteTaskStore, TaskSpec
from colony.tasks.checkpoints import Checkpointer, compact, load_checkpoints, storage_bytes
from colony.tasks.machine import STATES, TERMINAL_STATES, allowed
from colony.tasks.models import Lease, PlanStep
from colony.tasks.plans import load_plan, next_step
from colony.tasks.store import backoff_s


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = open_database(tmp_path / "tasks.db")
    yield d
    d.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db: Database, clock: Clock) -> SqliteTaskStore:
    return SqliteTaskStore(db, clock=clock, backoff_base_s=1.0, backoff_max_s=8.0)


def test_the_transition_table_covers_every_state_and_completed_is_final() -> None:
    assert set(TRANSITIONS) == set(STATES)
    assert TRANSITIONS["completed"] == frozenset()
    assert allowed("failed") == ["posted"] and allowed("cancelled") == ["posted"]
    for state in STATES:
        if state not in TERMINAL_STATES:
            assert "cancelled" in TRANSITIONS[state]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n, 1.0, 8.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_checkpoints_through_the_database_handle_and_their_size_on_disk(store: SqliteTaskStore, clock: Clock,
                                                                          db: Database) -> None:
    task = store.post(TaskSpec(goal="g"))
    lease = store.claim("w", 10)
    assert lease is not None
    cp = Checkpointer(store, lease)
    assert cp.save("m0", "model", {"request": {"messages": ["x" * 500]}, "response": {"message": {}}})
    assert not cp.save("m0", "model", {"other": 1})  # first write wins: a resumed run re-serves it
    assert cp.save("t0", "tool", {"call": {"name": "read_file"}, "result": {"outcome": "ok"}})
    stale = Lease(task_id=task.id, token="forged", worker="x", expires=0, attempt=1)
    with pytest.raises(LeaseLostError):
        Checkpointer(store, stale).save("m1", "model", {})
    assert store.claim("w", 10) is None  # nothing else ready
    store.complete(lease)
    assert compact(db, older_than=clock.now - 1).tasks == 0  # still within retention
    report = compact(db, older_than=clock.now + 1)
    assert report.tasks == 1 and report.rows_removed == 2
    rows = load_checkpoints(db, task.id)
    assert [r.kind for r in rows] == ["summary"]
    assert rows[0].body["tools"] == ["read_file → ok"] and rows[0].body["kinds"] == {"model": 1, "tool": 1}
    assert storage_bytes(db)["task_checkpoints"] > 0


def test_a_plan_reads_through_the_database_handle(store: SqliteTaskStore, db: Database) -> None:
    task = store.post(TaskSpec(goal="g", plan=[PlanStep(title="a"), PlanStep(title="b", depends_on=[0])]))
    steps = load_plan(db, task.id)
    assert [s.status for s in steps] == ["pending", "pending"] and next_step(steps) == 0
    assert load_plan(db, task.id) == load_plan(store, task.id)
    with pytest.raises(ValueError, match="earlier steps"):
        TaskSpec(goal="g", plan=[PlanStep(title="a", depends_on=[1]), PlanStep(title="b")])


def test_apsw_is_the_binding(db: Database) -> None:
    assert isinstance(db.connection(), apsw.Connection)


@pytest.mark.parametrize("module", [
    "colony.tasks", "colony.tasks.machine", "colony.tasks.models", "colony.tasks.store", "colony.tasks.checkpoints",
    "colony.tasks.recording", "colony.tasks.context_tape", "colony.tasks.hitl", "colony.tasks.plans",
    "colony.tasks.runner", "colony.tasks.replay", "colony.tasks.autonomy", "colony.tasks.pg_store",
])
def test_every_tasks_module_exports_what_it_names(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert mod.__all__ and all(getattr(mod, name) is not None for name in mod.__all__)


def test_a_goal_is_blank_as_the_schema_says_blank() -> None:
    # Regression (schemathesis ST202): str.strip() removes U+001C-U+001F, so a goal the schema's
    # pattern (Unicode White_Space) accepted was refused with 422.
    from colony.tasks.models import TaskSpec

    assert TaskSpec(goal="\x1e").goal == "\x1e"
    for blank in (" ", "\t\n", "\u3000\u2003", "\xa0"):
        with pytest.raises(ValueError, match=r"pattern|not blank"):
            TaskSpec(goal=blank)
