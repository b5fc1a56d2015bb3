"""The task store's contract, run on every backend: SQLite (the node's file) and PostgreSQL.

Every test takes the `backend` fixture, parametrised over both engines, and asserts only what a
`TaskStore` promises — transitions, leases, the reaper, dependencies, checkpoints, plans,
approvals, secrets at rest, and exactly-once claims under contention — so whatever passes on
SQLite must pass on PostgreSQL. PostgreSQL is the suite's own private server (`pg_url`).
A hypothesis state machine drives random operations on each backend and checks the invariants.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from colony.errors import (
    DependencyCycleError,
    IllegalTransitionError,
    LeaseLostError,
    StoreError,
    TaskError,
    TaskNotFoundError,
)
from colony.store import Database, open_database
from colony.store.pg import PgDatabase, open_pg
from colony.store.pg.embedded import EmbeddedPostgres
from colony.tasks import SqliteTaskStore, TaskSpec, TaskStore, state_from_events
from colony.tasks.checkpoints import Checkpointer, compact, load_checkpoints
from colony.tasks.hitl import decide, expire_task_pauses, pause_for_task
from colony.tasks.machine import LEASED_STATES
from colony.tasks.models import Lease, PlanStep, TaskState
from colony.tasks.pg_store import PgTaskStore
from colony.tasks.plans import load_plan, next_step, set_step


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """One engine under test: its store, the clock the store reads, and raw SQL for tamper tests."""

    name: str
    store: TaskStore
    clock: Clock
    execute: Callable[[str], object]
    #: What a separate process needs to open the same queue (a file path or a URL).
    address: str


def _open(name: str, address: str, clock: Clock | None = None, **kw: Any) -> tuple[TaskStore, Callable[[], None]]:
    """A store on ``address`` and the function that closes it (used in this process and in workers)."""
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    if name == "sqlite":
        db = open_database(address)
        return SqliteTaskStore(db, **extra, **kw), db.close
    pg = open_pg(address, max_size=4)
    return PgTaskStore(pg, **extra, **kw), pg.close


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = Clock()
    raw: Database | PgDatabase
    store: TaskStore
    if request.param == "sqlite":
        address = str(tmp_path / "tasks.db")
        raw = open_database(address)
        store = SqliteTaskStore(raw, clock=clock, backoff_base_s=1.0, backoff_max_s=8.0)
    else:
        address = request.getfixturevalue("pg_url")
        raw = open_pg(address, max_size=4)
        store = PgTaskStore(raw, clock=clock, backoff_base_s=1.0, backoff_max_s=8.0)
    yield Backend(request.param, store, clock, raw.execute, address)
    raw.close()


# -- transitions and history -------------------------------------------------------------------


def test_an_illegal_transition_raises_and_changes_nothing(backend: Backend) -> None:
    store = backend.store
    task = store.post(TaskSpec(goal="g"))
    with pytest.raises(IllegalTransitionError) as info:
        store.transition(task.id, "completed", actor="me", reason="skip ahead")
    assert info.value.from_state == "posted" and info.value.to_state == "completed"
    assert "bidding" in str(info.value)
    assert store.get(task.id).state == "posted" and len(store.events(task.id)) == 1


def test_bidding_then_assignment_is_recorded_with_who_and_why(backend: Backend) -> None:
    store = backend.store
    task = store.post(TaskSpec(goal="g"), actor="alice")
    store.transition(task.id, "bidding", actor="market", reason="open for bids")
    store.transition(task.id, "posted", actor="market", reason="no bids")
    events = store.events(task.id)
    assert [(e.from_state, e.to_state, e.actor, e.reason) for e in events] == [
        (None, "posted", "alice", "posted"), ("posted", "bidding", "market", "open for bids"),
        ("bidding", "posted", "market", "no bids")]
    assert [e.id for e in events] == sorted(e.id for e in events)


def test_events_are_append_only(backend: Backend) -> None:
    task = backend.store.post(TaskSpec(goal="g"))
    with pytest.raises(StoreError, match="append-only"):
        backend.execute(f"UPDATE task_events SET reason = 'rewritten' WHERE task_id = '{task.id}'")
    with pytest.raises(StoreError, match="append-only"):
        backend.execute(f"DELETE FROM task_events WHERE task_id = '{task.id}'")
    assert [e.reason for e in backend.store.events(task.id)] == ["posted"]


def test_a_task_reads_back_as_it_was_posted(backend: Backend) -> None:
    spec = TaskSpec(goal="write the report", priority=7, deadline=2e6, skills=["sql", "python", "sql"],
                    budget={"tokens": 5000, "tool_calls": 3, "credits": 12}, max_attempts=5, approval="task",
                    pause_tools=["write_file"], approval_default="fail", approval_timeout_s=90.0)
    task = backend.store.post(spec, actor="cli")
    again = backend.store.get(task.id)
    assert again == task
    assert (task.state, task.priority, task.deadline, task.skills) == ("posted", 7, 2e6, ["python", "sql"])
    assert task.budget.model_dump() == {"tokens": 5000, "tool_calls": 3, "credits": 12}
    assert isinstance(task.budget.credits, int)
    assert (task.max_attempts, task.approval, task.pause_tools, task.approval_default, task.approval_timeout_s) == (
        5, "task", ["write_file"], "fail", 90.0)
    assert (task.attempts, task.waiting_on, task.lease_owner, task.created_at) == (0, 0, None, backend.clock.now)
    with pytest.raises(TaskNotFoundError):
        backend.store.get("task_missing")
    with pytest.raises(TaskNotFoundError):
        backend.store.events("task_missing")


def test_secrets_in_goals_results_and_reasons_are_masked_at_rest(backend: Backend) -> None:
    store = backend.store
    secret = "sk-ContractSecret0123456789abcdef"
    task = store.post(TaskSpec(goal=f"use {secret} to deploy"))
    lease = store.claim("w", 10)
    assert lease is not None
    store.fail(lease, f"auth failed for {secret}")
    backend.clock.now += 10
    lease = store.claim("w", 10)
    assert lease is not None
    done = store.complete(lease, f"deployed with {secret}")
    everything = " ".join([done.goal, done.result or "", *(e.reason for e in store.events(task.id))])
    assert secret not in everything and everything.count("[REDACTED]") == 3


def test_list_and_counts(backend: Backend) -> None:
    store = backend.store
    low = store.post(TaskSpec(goal="low", priority=-1))
    first, second = store.post_many([TaskSpec(goal="a"), TaskSpec(goal="b")])
    store.cancel(low.id)
    assert [t.id for t in store.list_tasks()] == [second.id, first.id, low.id]  # priority, then newest
    assert [t.id for t in store.list_tasks(states=["cancelled"])] == [low.id]
    assert [t.id for t in store.list_tasks(limit=1)] == [second.id]
    counts = store.counts()
    assert counts["posted"] == 2 and counts["cancelled"] == 1 and sum(counts.values()) == 3
    assert set(counts) == {"posted", "bidding", "assigned", "executing", "awaiting_approval", "retry_wait",
                           "completed", "failed", "cancelled"}


# -- claims ------------------------------------------------------------------------------------


def test_claims_take_priority_then_age_and_respect_skills(backend: Backend) -> None:
    store = backend.store
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
    assert store.get(a.id).lease_owner == "w-no-skills" and store.get(a.id).attempts == 1


#: Agents' accounts (64-hex public keys): a task is awarded to an account, never to a node-local name.
ADA, BOB, CY = "ad" * 32, "b0" * 32, "c0" * 32


def _award(store: TaskStore, task_id: str, account: str) -> None:
    """What the market's award does to a task: bidding, then assigned to the winning agent's account."""
    store.transition(task_id, "bidding", actor="market", reason="auction opened")
    store.transition(task_id, "assigned", actor="market", reason="awarded", fields={"assignee": account})


def _assigning(store: TaskStore) -> SqliteTaskStore | PgTaskStore:
    assert isinstance(store, SqliteTaskStore | PgTaskStore)  # both claim awarded tasks (the market's worker)
    return store


def test_awarded_tasks_are_claimed_only_as_their_agents(backend: Backend) -> None:
    store = _assigning(backend.store)
    plain = store.post(TaskSpec(goal="anyone's", priority=-1))
    ada, bob = store.post_many([TaskSpec(goal="ada's", priority=1), TaskSpec(goal="bob's")])
    _award(store, ada.id, ADA)
    _award(store, bob.id, BOB)
    assert (store.get(ada.id).state, store.get(ada.id).assignee) == ("assigned", ADA)
    lease = store.claim("generic", 10)
    assert lease is not None and lease.task_id == plain.id  # a generic worker leaves awarded tasks alone
    assert store.claim("generic", 10) is None
    assert store.claim_assigned("market", 10, assignees=[CY]) is None
    first = store.claim_assigned("market", 10, assignees=[ADA, BOB])
    assert first is not None and (first.task_id, first.attempt) == (ada.id, 1)  # priority first
    store.fail(first, "no model reachable")  # back in the queue after its backoff
    second = store.claim_assigned("market", 10)
    assert second is not None and second.task_id == bob.id  # ada's task waits out its backoff
    assert store.claim_assigned("market", 10) is None
    backend.clock.now += 5
    again = store.claim_assigned("market", 10, assignees=[ADA])
    assert again is not None and (again.task_id, again.attempt) == (ada.id, 2)
    assert [(e.from_state, e.to_state, e.actor, e.reason) for e in store.events(ada.id)][3:] == [
        ("assigned", "executing", "market", "started (attempt 1, lease 10s)"),
        ("executing", "retry_wait", "market", "no model reachable (attempt 1 of 3; retry in 1s)"),
        ("retry_wait", "assigned", "market", "claimed (attempt 2, lease 10s)"),
        ("assigned", "executing", "market", "started (attempt 2, lease 10s)")]
    task = store.get(ada.id)
    assert (task.state, task.assignee, task.lease_owner, task.attempts) == ("executing", ADA, "market", 2)
    store.complete(again, "done")
    assert store.get(ada.id).state == "completed"


def test_a_task_is_awarded_to_an_account_never_to_a_name(backend: Backend) -> None:
    store = backend.store
    task = store.post(TaskSpec(goal="won by ada"))
    with pytest.raises(StoreError, match="account"):  # a name is another node's agent too (migration 20)
        backend.execute(f"UPDATE tasks SET assignee = 'ada' WHERE id = '{task.id}'")
    assert store.get(task.id).assignee is None
    _award(store, task.id, ADA)
    assert (store.get(task.id).state, store.get(task.id).assignee) == ("assigned", ADA)


def test_has_ready_says_what_a_generic_claim_would_find(backend: Backend) -> None:
    """A worker builds a model only when `has_ready` says so: tasks in their backoff or awarded to
    an agent must not make it (it would claim nothing)."""
    store = backend.store
    assert not store.has_ready()
    awarded, retrying = store.post_many([TaskSpec(goal="awarded"), TaskSpec(goal="retrying")])
    assert store.has_ready()
    _award(store, awarded.id, ADA)
    lease = store.claim("w", 10)
    assert lease is not None and lease.task_id == retrying.id
    store.fail(lease, "try later")  # retry_wait, 1 s of backoff on the test clock
    assert not store.has_ready() and store.claim("w", 10) is None
    backend.clock.now += 2
    assert store.has_ready()
    again = store.claim("w", 10)
    assert again is not None and again.task_id == retrying.id


def test_racing_market_workers_claim_each_awarded_task_once(backend: Backend) -> None:
    store = backend.store
    tasks = store.post_many([TaskSpec(goal=f"awarded {i}") for i in range(24)])
    for i, task in enumerate(tasks):
        _award(store, task.id, (ADA, BOB)[i % 2])
    start = threading.Barrier(4)
    claimed: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        mine, close = _open(backend.name, backend.address, backend.clock)
        try:
            start.wait()
            while (lease := _assigning(mine).claim_assigned(name, 60)) is not None:
                claimed.append((lease.task_id, name))
        except BaseException as exc:
            errors.append(exc)
        finally:
            close()

    threads = [threading.Thread(target=worker, args=(f"market-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(t for t, _ in claimed) == sorted(t.id for t in tasks)  # every one, once
    for task_id, name in claimed:
        assert [(e.to_state, e.actor) for e in store.events(task_id)][-1] == ("executing", name)


def test_among_equal_priorities_the_nearest_deadline_goes_first(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    none = store.post(TaskSpec(goal="no deadline"))
    late = store.post(TaskSpec(goal="late", deadline=clock.now + 3600))
    soon = store.post(TaskSpec(goal="soon", deadline=clock.now + 60))
    order = []
    while (lease := store.claim("w", 10)) is not None:
        order.append(lease.task_id)
    assert order == [soon.id, late.id, none.id]


def test_work_in_progress_is_resumed_before_new_work(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
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
    assert [(s.status, s.result) for s in load_plan(store, started.id)] == [("done", "a is done"), ("pending", None)]
    nxt = store.claim("w2", 5)
    assert nxt is not None and nxt.task_id == urgent.id


# -- leases and the reaper ---------------------------------------------------------------------


def test_the_reaper_takes_back_at_once_the_leases_of_owners_known_to_be_dead(backend: Backend) -> None:
    """``reap(gone)``: a live lease of an owner ``gone`` names goes back now (same backoff, same attempt
    count as an expiry); other owners' live leases stay; without ``gone`` nothing live is touched."""
    store, clock = backend.store, backend.clock
    dead_task = store.post(TaskSpec(goal="the killed worker's", max_attempts=3))
    dead = store.claim("market@h1:111", 60)
    live_task = store.post(TaskSpec(goal="a live worker's"))
    live = store.claim("market@h1:222", 60)
    assert dead is not None and live is not None and dead.task_id == dead_task.id
    clock.now += 1
    assert store.reap() == []
    assert store.reap(lambda owner: False) == []
    assert store.reap(lambda owner: owner == "market@h1:111") == [(dead_task.id, "retry_wait")]
    back = store.get(dead_task.id)
    assert back.state == "retry_wait" and back.lease_owner is None and back.attempts == 1
    assert any("that process is gone" in e.reason for e in store.events(dead_task.id))
    with pytest.raises(LeaseLostError):
        store.heartbeat(dead, 60)  # the dead worker's token is refused, should it ever speak again
    assert store.get(live_task.id).state == "executing" and store.heartbeat(live, 60).task_id == live_task.id
    clock.now += 1  # the backoff (1 s), then another worker resumes it
    again = store.claim("market@h1:333", 60)
    assert again is not None and again.task_id == dead_task.id and again.attempt == 2


def test_a_stale_lease_cannot_complete_and_the_reaper_requeues_with_backoff(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
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
    assert done.state == "completed" and done.result == "ok" and done.lease_owner is None
    with pytest.raises(LeaseLostError):
        store.complete(second, "twice")
    completions = [e for e in store.events(task.id) if e.to_state == "completed"]
    assert len(completions) == 1 and completions[0].actor == "w2"
    assert state_from_events(store.events(task.id)) == "completed"


def test_the_reaper_fails_a_task_after_its_last_attempt(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
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


def test_fail_release_and_cancel(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    task = store.post(TaskSpec(goal="g", max_attempts=3))
    lease = store.claim("w", 10)
    assert lease is not None
    failed = store.fail(lease, "boom")
    assert failed.state == "retry_wait" and failed.not_before == clock.now + 1.0 and failed.error == "boom"
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
    lease = store.claim("w", 10)
    assert lease is None
    other = store.post(TaskSpec(goal="no retry"))
    lease = store.claim("w", 10)
    assert lease is not None and lease.task_id == other.id
    assert store.fail(lease, "bad input", retry=False).state == "failed"


def test_usage_is_recorded_under_the_lease(backend: Backend) -> None:
    store = backend.store
    task = store.post(TaskSpec(goal="g"))
    lease = store.claim("w", 10)
    assert lease is not None
    store.record_usage(lease, tokens=120, tool_calls=1)
    store.record_usage(lease, tokens=30)
    assert (store.get(task.id).used_tokens, store.get(task.id).used_tool_calls) == (150, 1)
    store.cancel(task.id)
    with pytest.raises(LeaseLostError):
        store.record_usage(lease, tokens=1)


# -- dependencies and children -----------------------------------------------------------------


def test_dependencies_wait_and_cycles_are_refused(backend: Backend) -> None:
    store = backend.store
    a = store.post(TaskSpec(goal="a"))
    b = store.post(TaskSpec(goal="b", depends_on=[a.id], priority=10))
    c = store.post(TaskSpec(goal="c", depends_on=[b.id], priority=10))
    assert b.waiting_on == 1 and b.depends_on == [a.id]
    with pytest.raises(DependencyCycleError) as info:
        store.add_dependency(a.id, c.id)
    assert info.value.cycle == [a.id, c.id, b.id, a.id]
    with pytest.raises(DependencyCycleError):
        store.add_dependency(a.id, a.id)
    with pytest.raises(TaskNotFoundError):
        store.add_dependency(a.id, "task_nope")
    assert store.get(a.id).waiting_on == 0
    order = []
    while (lease := store.claim("w", 10)) is not None:
        order.append(lease.task_id)
        store.complete(lease)
    assert order == [a.id, b.id, c.id]
    with pytest.raises(TaskError, match="before it starts"):
        store.add_dependency(a.id, b.id)


def test_a_dependency_on_finished_work_does_not_wait(backend: Backend) -> None:
    store = backend.store
    a = store.post(TaskSpec(goal="a"))
    lease = store.claim("w", 10)
    assert lease is not None
    store.complete(lease)
    b = store.post(TaskSpec(goal="b", depends_on=[a.id]))
    assert b.waiting_on == 0 and b.depends_on == [a.id]
    x, y = store.post(TaskSpec(goal="x")), store.post(TaskSpec(goal="y"))
    z = store.post(TaskSpec(goal="z", depends_on=[y.id, x.id]))
    assert z.waiting_on == 2 and z.depends_on == sorted([x.id, y.id])
    assert store.add_dependency(z.id, x.id).waiting_on == 2  # the same edge twice counts once


def test_children_point_at_their_parent(backend: Backend) -> None:
    store = backend.store
    parent = store.post(TaskSpec(goal="p"))
    kids = store.post_many([TaskSpec(goal=f"k{i}", parent_id=parent.id) for i in range(3)])
    assert {k.id for k in store.list_tasks(parent_id=parent.id)} == {k.id for k in kids}
    with pytest.raises(TaskNotFoundError):
        store.post(TaskSpec(goal="orphan", parent_id="task_nope"))
    assert store.counts()["posted"] == 4  # the refused batch left nothing behind


# -- checkpoints, plans and approvals ----------------------------------------------------------


def test_checkpoints_need_the_lease_and_compaction_summarizes(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    task = store.post(TaskSpec(goal="g"))
    lease = store.claim("w", 10)
    assert lease is not None
    cp = Checkpointer(store, lease)
    assert cp.save("m0", "model", {"request": {"messages": ["x" * 500]}, "response": {"message": {}}})
    assert not cp.save("m0", "model", {"other": 1})  # first write wins: a resumed run re-serves it
    assert cp.save("t0", "tool", {"call": {"name": "read_file"}, "result": {"outcome": "ok"}})
    assert list(cp.load()) == ["m0", "t0"] and cp.load()["m0"].body["request"]["messages"] == ["x" * 500]
    stale = Lease(task_id=task.id, token="forged", worker="x", expires=0, attempt=1)
    with pytest.raises(LeaseLostError):
        Checkpointer(store, stale).save("m1", "model", {})
    assert store.claim("w", 10) is None  # nothing else ready
    store.complete(lease)
    assert compact(store, older_than=clock.now - 1).tasks == 0  # still within retention
    report = compact(store, older_than=clock.now + 1)
    assert report.tasks == 1 and report.rows_removed == 2 and report.bytes_after > 0
    rows = load_checkpoints(store, task.id)
    assert [r.kind for r in rows] == ["summary"]
    assert rows[0].body["tools"] == ["read_file → ok"] and rows[0].body["kinds"] == {"model": 1, "tool": 1}


def test_a_plan_runs_its_steps_in_dependency_order(backend: Backend) -> None:
    store = backend.store
    task = store.post(TaskSpec(goal="g", plan=[PlanStep(title="a"), PlanStep(title="b", depends_on=[0])]))
    steps = load_plan(store, task.id)
    assert [(s.title, s.depends_on, s.status) for s in steps] == [("a", [], "pending"), ("b", [0], "pending")]
    assert next_step(steps) == 0
    lease = store.claim("w", 10)
    assert lease is not None
    set_step(store, lease, 0, "in_progress")
    set_step(store, lease, 0, "done", "a done")
    assert next_step(load_plan(store, task.id)) == 1
    store.cancel(task.id)
    with pytest.raises(LeaseLostError):
        set_step(store, lease, 1, "in_progress")


def test_per_task_approval_decisions_and_timeouts(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
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
    approved = store.post(TaskSpec(goal="h", approval="task"))
    lease = store.claim("w", 10)
    assert lease is not None and lease.task_id == approved.id
    pause_for_task(store, lease, 30)
    after = decide(store, approved.id, True, actor="carol")
    assert after.state == "posted" and after.approved
    assert store.events(approved.id)[-1].data == {"decision": "approved"}


# -- contention --------------------------------------------------------------------------------


def _drain(name: str, address: str, worker: str, start: Any) -> None:
    store, close = _open(name, address)
    start.wait(60)  # every process and thread starts claiming at once
    try:
        while (lease := store.claim(worker, 30)) is not None:
            store.complete(lease, worker)
    finally:
        close()


def test_many_processes_and_threads_claim_each_task_exactly_once(backend: Backend) -> None:
    total = 1500
    backend.store.post_many([TaskSpec(goal=f"no-op {i}") for i in range(total)])
    ctx = multiprocessing.get_context("forkserver")
    start = ctx.Barrier(3 + 6)
    procs = [ctx.Process(target=_drain, args=(backend.name, backend.address, f"proc{i}", start), daemon=True)
             for i in range(3)]
    for p in procs:
        p.start()
    errors: list[BaseException] = []

    def thread_worker(i: int) -> None:
        try:
            _drain(backend.name, backend.address, f"thread{i}", start)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread_worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0] and errors == []
    tasks = backend.store.list_tasks(limit=total + 1)
    assert len(tasks) == total and {t.state for t in tasks} == {"completed"}
    claimed: Counter[str] = Counter()
    finishers = set()
    for t in tasks:
        events = backend.store.events(t.id)
        assert [e.to_state for e in events] == ["posted", "assigned", "executing", "completed"]
        assert events[1].actor == events[3].actor == t.result  # whoever claimed it completed it
        claimed[t.id] += 1
        finishers.add(events[3].actor)
    assert set(claimed.values()) == {1}
    assert any(w.startswith("proc") for w in finishers) and any(w.startswith("thread") for w in finishers)


# -- property-based: random operations never reach an illegal state ------------------------------


class TaskMachine(RuleBasedStateMachine):
    """Random posts, claims, heartbeats, completions (fresh and stale), failures, reaps, cancels,
    retries and approvals against one store with a fake clock; a new, empty store per example."""

    tasks = Bundle("tasks")
    factory: Callable[[Clock], tuple[TaskStore, Callable[[], None]]]

    @initialize()
    def setup(self) -> None:
        self.clock = Clock()
        self.store, self.close = self.factory(self.clock)
        self.leases: list[Lease] = []

    def teardown(self) -> None:
        if hasattr(self, "close"):
            self.close()

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
        if self.leases:
            lease = data.draw(st.sampled_from(self.leases))
            try:
                self.store.heartbeat(lease, 5)
                if self.store.get(lease.task_id).approval == "task":
                    pause_for_task(self.store, lease, 3)
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


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_random_operations_keep_every_invariant(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    made: list[str] = []
    if engine == "sqlite":
        def factory(clock: Clock) -> tuple[TaskStore, Callable[[], None]]:
            path = str(tmp_path / f"{uuid.uuid4().hex}.db")
            return _open("sqlite", path, clock, backoff_base_s=1.0, backoff_max_s=4.0)
    else:
        server: EmbeddedPostgres = request.getfixturevalue("pg_server")

        def factory(clock: Clock) -> tuple[TaskStore, Callable[[], None]]:
            name = f"sm_{uuid.uuid4().hex[:12]}"
            made.append(name)
            store, close = _open("postgres", server.create_database(name), clock, backoff_base_s=1.0,
                                 backoff_max_s=4.0)

            def close_and_drop() -> None:
                close()
                server.drop_database(name)

            return store, close_and_drop

    machine = type(f"TaskMachine_{engine}", (TaskMachine,), {"factory": staticmethod(factory)})
    run_state_machine_as_test(machine, settings=hsettings(  # PostgreSQL: a new database per example
        max_examples=60 if engine == "sqlite" else 40, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]))
