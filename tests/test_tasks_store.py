"""The task store and state machine: transitions, leases, the reaper, dependencies, checkpoints,
and a hypothesis state machine that drives random operations and checks the invariants."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from colony.errors import (
    DependencyCycleError,
    IllegalTransitionError,
    LeaseLostError,
    StoreError,
    TaskNotFoundError,
)
from colony.store import Database, open_database
from colony.tasks import TRANSITIONS, SqliteTaskStore, TaskSpec, state_from_events
from colony.tasks.checkpoints import Checkpointer, compact, load_checkpoints, storage_bytes
from colony.tasks.hitl import decide, expire_task_pauses
from colony.tasks.machine import LEASED_STATES, STATES, TERMINAL_STATES, allowed
from colony.tasks.models import Lease, TaskState
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


def test_an_illegal_transition_raises_and_changes_nothing(store: SqliteTaskStore) -> None:
    task = store.post(TaskSpec(goal="g"))
    with pytest.raises(IllegalTransitionError) as info:
        store.transition(task.id, "completed", actor="me", reason="skip ahead")
    assert info.value.from_state == "posted" and info.value.to_state == "completed"
    assert "bidding" in str(info.value)
    assert store.get(task.id).state == "posted" and len(store.events(task.id)) == 1


def test_bidding_then_assignment_is_recorded_with_who_and_why(store: SqliteTaskStore) -> None:
    task = store.post(TaskSpec(goal="g"), actor="alice")
    store.transition(task.id, "bidding", actor="market", reason="open for bids")
    store.transition(task.id, "posted", actor="market", reason="no bids")
    events = store.events(task.id)
    assert [(e.from_state, e.to_state, e.actor, e.reason) for e in events] == [
        (None, "posted", "alice", "posted"), ("posted", "bidding", "market", "open for bids"),
        ("bidding", "posted", "market", "no bids")]


def test_events_are_append_only(store: SqliteTaskStore, db: Database) -> None:
    task = store.post(TaskSpec(goal="g"))
    with pytest.raises(StoreError):
        db.execute("UPDATE task_events SET reason = 'rewritten' WHERE task_id = ?", (task.id,))
    with pytest.raises(StoreError):
        db.execute("DELETE FROM task_events WHERE task_id = ?", (task.id,))


def test_claims_take_priority_then_age_and_respect_skills(store: SqliteTaskStore) -> None:
    a = store.post(TaskSpec(goal="a", priority=1))
    b = store.post(TaskSpec(goal="b", priority=5, skills=["python"]))
    c = store.post(TaskSpec(goal="c", priority=1))
    lease = store.claim("w-no-skills", 10, skills=[])
    assert lease is not None and lease.task_id == a.id  # b needs a skill this worker lacks
    lease = store.claim("w-python", 10, skills=["python", "sql"])
    assert lease is not None and lease.task_id == b.id
    lease = store.claim("w-any", 10)
    assert lease is not None and lease.task_id == c.id
    assert store.claim("w-any", 10) is None
    assert [e.to_state for e in store.events(a.id)] == ["posted", "assigned", "executing"]


def test_among_equal_priorities_the_nearest_deadline_goes_first(store: SqliteTaskStore, clock: Clock) -> None:
    none = store.post(TaskSpec(goal="no deadline"))
    late = store.post(TaskSpec(goal="late", deadline=clock.now + 3600))
    soon = store.post(TaskSpec(goal="soon", deadline=clock.now + 60))
    order = []
    while (lease := store.claim("w", 10)) is not None:
        order.append(lease.task_id)
    assert order == [soon.id, late.id, none.id]


def test_work_in_progress_is_resumed_before_new_work(store: SqliteTaskStore, clock: Clock) -> None:
    from colony.tasks.models import PlanStep
    from colony.tasks.plans import set_step

    started = store.post(TaskSpec(goal="half done", plan=[PlanStep(title="a"), PlanStep(title="b")]))
    lease = store.claim("w1", 5)
    assert lease is not None and lease.task_id == started.id
    set_step(store, lease, 0, "done", "a is done")
    clock.now += 10  # w1 died
    store.reap()
    urgent = store.post(TaskSpec(goal="new and urgent", priority=100))
    clock.now += 10
    lease = store.claim("w2", 5)
    assert lease is not None and lease.task_id == started.id  # the interrupted plan first
    assert [s.status for s in load_plan(store.db, started.id)] == ["done", "pending"]
    nxt = store.claim("w2", 5)
    assert nxt is not None and nxt.task_id == urgent.id


def test_a_stale_lease_cannot_complete_and_the_reaper_requeues_with_backoff(
    store: SqliteTaskStore, clock: Clock
) -> None:
    task = store.post(TaskSpec(goal="g", max_attempts=2))
    first = store.claim("w1", 10)
    assert first is not None
    clock.now += 5
    first = store.heartbeat(first, 10)  # renewed: now expires at +15
    clock.now += 9
    assert store.reap() == []
    clock.now += 2  # w1 stopped heartbeating
    with pytest.raises(LeaseLostError):
        store.complete(first, "too late")  # expired, even before the reaper ran
    assert store.reap() == [(task.id, "retry_wait")]
    assert store.claim("w2", 10) is None  # backing off 1 s
    clock.now += 1
    second = store.claim("w2", 10)
    assert second is not None and second.task_id == task.id and second.attempt == 2
    with pytest.raises(LeaseLostError):
        store.complete(first)  # the old token is refused, lease expired or not
    with pytest.raises(LeaseLostError):
        store.heartbeat(first, 10)
    done = store.complete(second, "ok")
    assert done.state == "completed" and done.result == "ok"
    with pytest.raises(LeaseLostError):
        store.complete(second, "twice")
    completions = [e for e in store.events(task.id) if e.to_state == "completed"]
    assert len(completions) == 1 and completions[0].actor == "w2"
    assert state_from_events(store.events(task.id)) == "completed"


def test_the_reaper_fails_a_task_after_its_last_attempt(store: SqliteTaskStore, clock: Clock) -> None:
    task = store.post(TaskSpec(goal="g", max_attempts=2))
    for _ in range(2):
        assert store.claim("w", 1) is not None
        clock.now += 100
        store.reap()
        clock.now += 10  # past the backoff
    final = store.get(task.id)
    assert final.state == "failed" and final.attempts == 2
    assert "gave up after 2 attempts" in store.events(task.id)[-1].reason
    store.retry(task.id)
    assert store.get(task.id).state == "posted" and store.get(task.id).attempts == 0


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n, 1.0, 8.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_fail_release_and_cancel(store: SqliteTaskStore, clock: Clock) -> None:
    task = store.post(TaskSpec(goal="g", max_attempts=3))
    lease = store.claim("w", 10)
    assert lease is not None
    assert store.fail(lease, "boom").state == "retry_wait"
    clock.now += 10
    lease = store.claim("w", 10)
    assert lease is not None
    released = store.release(lease, "shutting down")
    assert released.state == "posted" and released.attempts == 1 and released.lease_owner is None
    lease = store.claim("w", 10)
    assert lease is not None
    store.cancel(task.id, actor="bob", reason="not needed")
    with pytest.raises(LeaseLostError):
        store.heartbeat(lease, 10)  # the worker learns at its next heartbeat
    with pytest.raises(IllegalTransitionError):
        store.cancel(task.id)
    with pytest.raises(TaskNotFoundError):
        store.get("task_missing")


def test_dependencies_wait_and_cycles_are_refused(store: SqliteTaskStore) -> None:
    a = store.post(TaskSpec(goal="a"))
    b = store.post(TaskSpec(goal="b", depends_on=[a.id], priority=10))
    c = store.post(TaskSpec(goal="c", depends_on=[b.id], priority=10))
    assert b.waiting_on == 1 and b.depends_on == [a.id]
    with pytest.raises(DependencyCycleError) as info:
        store.add_dependency(a.id, c.id)
    assert info.value.cycle == [a.id, c.id, b.id, a.id]
    with pytest.raises(DependencyCycleError):
        store.add_dependency(a.id, a.id)
    assert store.get(a.id).waiting_on == 0
    order = []
    while (lease := store.claim("w", 10)) is not None:
        order.append(lease.task_id)
        store.complete(lease)
    assert order == [a.id, b.id, c.id]


def test_children_point_at_their_parent(store: SqliteTaskStore) -> None:
    parent = store.post(TaskSpec(goal="p"))
    kids = store.post_many([TaskSpec(goal=f"k{i}", parent_id=parent.id) for i in range(3)])
    assert {k.id for k in store.list_tasks(parent_id=parent.id)} == {k.id for k in kids}
    with pytest.raises(TaskNotFoundError):
        store.post(TaskSpec(goal="orphan", parent_id="task_nope"))


def test_checkpoints_need_the_lease_and_compaction_summarizes(store: SqliteTaskStore, clock: Clock,
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


def test_per_task_approval_decisions_and_timeouts(store: SqliteTaskStore, clock: Clock) -> None:
    from colony.tasks.hitl import pause_for_task

    task = store.post(TaskSpec(goal="g", approval="task", approval_default="fail"))
    lease = store.claim("w", 10)
    assert lease is not None
    paused = pause_for_task(store, lease, 30)
    assert paused.state == "awaiting_approval" and paused.attempts == 0 and paused.lease_owner is None
    assert store.reap() == []  # no lease: the reaper leaves it to the timeout
    clock.now += 31
    assert expire_task_pauses(store) == [(task.id, "failed")]
    with pytest.raises(IllegalTransitionError):
        decide(store, task.id, True)  # too late: the default decided


def test_a_plan_runs_its_steps_in_dependency_order(store: SqliteTaskStore, db: Database) -> None:
    from colony.tasks.models import PlanStep

    task = store.post(TaskSpec(goal="g", plan=[PlanStep(title="a"), PlanStep(title="b", depends_on=[0])]))
    steps = load_plan(db, task.id)
    assert [s.status for s in steps] == ["pending", "pending"] and next_step(steps) == 0
    with pytest.raises(ValueError, match="earlier steps"):
        TaskSpec(goal="g", plan=[PlanStep(title="a", depends_on=[1]), PlanStep(title="b")])


# -- property-based: random operations never reach an illegal state ------------------------------


class TaskMachine(RuleBasedStateMachine):
    """Random posts, claims, heartbeats, completions (fresh and stale), failures, reaps, cancels,
    retries and approvals against one store with a fake clock."""

    tasks = Bundle("tasks")

    @initialize()
    def setup(self) -> None:
        import tempfile

        self.dir = tempfile.TemporaryDirectory()
        self.db = open_database(Path(self.dir.name) / "t.db")
        self.clock = Clock()
        self.store = SqliteTaskStore(self.db, clock=self.clock, backoff_base_s=1.0, backoff_max_s=4.0)
        self.leases: list[Lease] = []

    def teardown(self) -> None:
        self.db.close()
        self.dir.cleanup()

    @rule(target=tasks, attempts=st.integers(1, 3), pause=st.booleans())
    def post(self, attempts: int, pause: bool) -> str:
        return self.store.post(TaskSpec(goal="g", max_attempts=attempts, approval="task" if pause else "none")).id

    @rule(ttl=st.floats(1, 20))
    def claim(self, ttl: float) -> None:
        lease = self.store.claim(f"w{len(self.leases)}", ttl)
        if lease is not None:
            self.leases.append(lease)

    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        if self.leases:
            lease = data.draw(st.sampled_from(self.leases))
            with contextlib.suppress(LeaseLostError, IllegalTransitionError):
                self.store.complete(lease, "ok")

    @rule(data=st.data(), retry=st.booleans())
    def fail(self, data: st.DataObject, retry: bool) -> None:
        if self.leases:
            with contextlib.suppress(LeaseLostError, IllegalTransitionError):
                self.store.fail(data.draw(st.sampled_from(self.leases)), "boom", retry=retry)

    @rule(data=st.data())
    def heartbeat_or_pause(self, data: st.DataObject) -> None:
        from colony.tasks.hitl import pause_for_task

        if self.leases:
            lease = data.draw(st.sampled_from(self.leases))
            try:
                if self.store.get(lease.task_id).approval == "task":
                    self.store.heartbeat(lease, 5)
                    pause_for_task(self.store, lease, 3)
                else:
                    self.store.heartbeat(lease, 5)
            except (LeaseLostError, IllegalTransitionError):
                pass

    @rule(seconds=st.floats(0, 30))
    def time_passes_and_reaper_runs(self, seconds: float) -> None:
        self.clock.now += seconds
        self.store.reap()
        expire_task_pauses(self.store)

    @rule(task_id=tasks, approve=st.booleans())
    def decide(self, task_id: str, approve: bool) -> None:
        with contextlib.suppress(IllegalTransitionError):
            decide(self.store, task_id, approve)

    @rule(task_id=tasks, award=st.booleans())
    def bidding(self, task_id: str, award: bool) -> None:
        """Open a posted task for bids, then either close the round or see it withdrawn."""
        try:
            self.store.transition(task_id, "bidding", actor="market", reason="open for bids", expect=("posted",))
        except IllegalTransitionError:
            return
        lease = self.store.claim("bystander", 5)  # a task out for bids is not in the queue
        assert lease is None or lease.task_id != task_id
        if lease is not None:
            self.leases.append(lease)
        to: TaskState = "posted" if award else "cancelled"
        self.store.transition(task_id, to, actor="market", reason="round closed")

    @rule(task_id=tasks)
    def cancel(self, task_id: str) -> None:
        try:
            self.store.cancel(task_id)
        except IllegalTransitionError:
            assert self.store.get(task_id).terminal

    @rule(task_id=tasks)
    def retry(self, task_id: str) -> None:
        try:
            self.store.retry(task_id)
        except IllegalTransitionError:
            assert self.store.get(task_id).state not in ("failed", "cancelled")

    @invariant()
    def every_task_is_its_history(self) -> None:
        if not hasattr(self, "store"):
            return
        for task in self.store.list_tasks(limit=1000):
            events = self.store.events(task.id)
            assert state_from_events(events) == task.state
            assert sum(e.to_state == "completed" for e in events) <= 1
            leased = task.lease_owner is not None
            assert leased == (task.lease_expires is not None)
            if leased:
                assert task.state in LEASED_STATES
            if task.terminal or task.state in ("posted", "retry_wait", "bidding"):
                assert not leased
            assert 0 <= task.attempts <= task.max_attempts


TestTaskMachine = TaskMachine.TestCase
TestTaskMachine.settings = hsettings(max_examples=60, stateful_step_count=30, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])


def test_apsw_is_the_binding(db: Database) -> None:
    assert isinstance(db.connection(), apsw.Connection)


@pytest.mark.parametrize("module", [
    "colony.tasks", "colony.tasks.machine", "colony.tasks.models", "colony.tasks.store", "colony.tasks.checkpoints",
    "colony.tasks.recording", "colony.tasks.context_tape", "colony.tasks.hitl", "colony.tasks.plans",
    "colony.tasks.runner", "colony.tasks.replay", "colony.tasks.autonomy",
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
