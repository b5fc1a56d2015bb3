"""Durable task storage: post, claim with a lease, heartbeat, complete, reap — on SQLite.

Why the claim is safe under contention: it is one ``UPDATE … WHERE rowid = (SELECT … LIMIT 1)
RETURNING`` inside ``BEGIN IMMEDIATE``. The immediate transaction takes SQLite's single write
lock before reading, so no two connections — threads or processes — can pick the same row, and
the event row is written in the same transaction, so a claim and its history never disagree.

Why completion cannot happen twice: every lease carries a random token. Heartbeat, completion
and failure only touch the row when the token matches *and* the lease has not expired; a worker
that stalled past its TTL finds its token replaced (the reaper moved the task on) or its lease
expired, and gets `LeaseLostError` instead of a second "completed" event.

The queue is behind the `TaskStore` protocol so a remote or marketplace-backed queue can stand
in later; `SqliteTaskStore` is the implementation a node uses.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

import apsw

from colony.errors import (
    DependencyCycleError,
    IllegalTransitionError,
    LeaseLostError,
    TaskError,
    TaskNotFoundError,
)
from colony.redaction import redact, redact_text
from colony.store import Database, Row
from colony.store.sessions import new_id
from colony.tasks import machine
from colony.tasks.models import Budget, Lease, PlanStep, StepStatus, Task, TaskEvent, TaskSpec, TaskState

__all__ = ["PeopleActions", "SqliteTaskStore", "TaskStore", "backoff_s", "row_to_task"]


class TaskStore(Protocol):
    """What workers, the autonomy loop and the surfaces need from a task queue.

    Two implementations keep the same contract (tests/contract runs one suite on both):
    `SqliteTaskStore` here and `colony.tasks.pg_store.PgTaskStore` on PostgreSQL. The last group
    of methods holds the writes a worker makes under its lease (checkpoints, plan steps) and the
    queries of the autonomy loop, so no caller above the store needs its SQL dialect.
    """

    clock: Callable[[], float]

    def post(self, spec: TaskSpec, *, actor: str = "user") -> Task: ...
    def get(self, task_id: str) -> Task: ...
    def events(self, task_id: str) -> list[TaskEvent]: ...
    def claim(self, worker: str, ttl_s: float, *, skills: Iterable[str] | None = None) -> Lease | None: ...
    def heartbeat(self, lease: Lease, ttl_s: float) -> Lease: ...
    def complete(self, lease: Lease, result: str = "") -> Task: ...
    def fail(self, lease: Lease, error: str, *, retry: bool = True) -> Task: ...
    def release(self, lease: Lease, reason: str) -> Task: ...
    def reap(self) -> list[tuple[str, TaskState]]: ...
    def cancel(self, task_id: str, *, actor: str = "user", reason: str = "cancelled") -> Task: ...
    def retry(self, task_id: str, *, actor: str = "user") -> Task: ...
    def post_many(self, specs: Iterable[TaskSpec], *, actor: str = "user") -> list[Task]: ...
    def list_tasks(self, *, states: Iterable[TaskState] | None = None, limit: int = 100,
                   parent_id: str | None = None) -> list[Task]: ...
    def counts(self) -> dict[str, int]: ...
    def add_dependency(self, task_id: str, depends_on: str) -> Task: ...
    def transition(self, task_id: str, to: TaskState, *, actor: str, reason: str,
                   fields: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                   expect: Iterable[TaskState] | None = None) -> Task: ...
    def record_usage(self, lease: Lease, *, tokens: int = 0, tool_calls: int = 0) -> None: ...
    def has_ready(self) -> bool: ...
    def expired_pauses(self) -> list[Row]: ...
    def save_checkpoint(self, lease: Lease, step: str, kind: str, body: bytes) -> bool: ...
    def checkpoint_rows(self, task_id: str) -> list[Row]: ...
    def compact_checkpoints(self, older_than: float,
                            summarize: Callable[[list[Row]], bytes]) -> tuple[int, int, int, int]: ...
    def load_plan(self, task_id: str) -> list[PlanStep]: ...
    def set_plan_step(self, lease: Lease, idx: int, status: StepStatus, result: str | None = None) -> None: ...


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential backoff before attempt ``attempts + 1``: base, 2·base, 4·base … capped."""
    return float(min(max_s, base_s * (2 ** max(0, attempts - 1))))


_COLUMNS = "tasks.*, (SELECT json_group_array(depends_on) FROM task_deps WHERE task_id = tasks.id) AS deps"


def row_to_task(row: Row) -> Task:
    return Task(
        id=row["id"], goal=row["goal"], state=row["state"], priority=row["priority"], deadline=row["deadline"],
        skills=json.loads(row["skills"]),
        # budget_credits is a REAL column: whole credits come back as floats (5.0) and are ints again here.
        budget=Budget(tokens=row["budget_tokens"], tool_calls=row["budget_tool_calls"],
                      credits=None if row["budget_credits"] is None else int(row["budget_credits"])),
        used_tokens=row["used_tokens"], used_tool_calls=row["used_tool_calls"], parent_id=row["parent_id"],
        depends_on=json.loads(row["deps"] or "[]"), waiting_on=row["waiting_on"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], not_before=row["not_before"], lease_owner=row["lease_owner"],
        lease_expires=row["lease_expires"], approval=row["approval"], approved=bool(row["approved"]),
        pause_tools=json.loads(row["pause_tools"]), approval_default=row["approval_default"],
        approval_timeout_s=row["approval_timeout_s"],
        awaiting=json.loads(row["awaiting"]) if row["awaiting"] else None, awaiting_expires=row["awaiting_expires"],
        result=row["result"], error=row["error"], created_at=row["created_at"], updated_at=row["updated_at"],
        assignee=row.get("assignee"),
    )


def _event(conn: apsw.Connection, task_id: str, from_state: TaskState | None, to_state: TaskState, actor: str,
           reason: str, at: float, data: dict[str, Any] | None = None) -> None:
    conn.execute(
        "INSERT INTO task_events(task_id, from_state, to_state, actor, reason, at, data) VALUES (?,?,?,?,?,?,?)",
        (task_id, from_state, to_state, actor, redact_text(reason), at,
         json.dumps(redact(data)) if data is not None else None),
    )


def _rows(conn: apsw.Connection, sql: str, params: Any = ()) -> list[Row]:
    """Rows as dicts (the Database installs a dict row factory on every connection)."""
    return cast(list[Row], conn.execute(sql, params).fetchall())


_CLEAR_LEASE = {"lease_owner": None, "lease_token": None, "lease_expires": None}


class _Moves(Protocol):
    def transition(self, task_id: str, to: TaskState, *, actor: str, reason: str,
                   fields: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                   expect: Iterable[TaskState] | None = None) -> Task: ...


class PeopleActions:
    """Cancel and retry, written once for every store: both are `transition` (each store's own,
    in its dialect) with fixed fields."""

    def cancel(self: _Moves, task_id: str, *, actor: str = "user", reason: str = "cancelled") -> Task:
        """Cancel a task that has not finished; a worker holding it loses its lease."""
        return self.transition(task_id, "cancelled", actor=actor, reason=reason,
                               fields={**_CLEAR_LEASE, "awaiting": None, "awaiting_expires": None})

    def retry(self: _Moves, task_id: str, *, actor: str = "user") -> Task:
        """Put a failed or cancelled task back in the queue with its attempts reset."""
        return self.transition(task_id, "posted", actor=actor, reason="retry requested",
                               fields={"attempts": 0, "not_before": 0, "error": None},
                               expect=("failed", "cancelled"))


class SqliteTaskStore(PeopleActions):
    """`TaskStore` over the node database. ``clock`` is injectable so tests can expire leases."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time,
                 backoff_base_s: float = 2.0, backoff_max_s: float = 300.0) -> None:
        self.db = db
        self.clock = clock
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s

    # -- posting and reading -----------------------------------------------------------------
    def post(self, spec: TaskSpec, *, actor: str = "user") -> Task:
        return self.post_many([spec], actor=actor)[0]

    def post_many(self, specs: Iterable[TaskSpec], *, actor: str = "user") -> list[Task]:
        """Post several tasks in one transaction (a batch of 5,000 takes well under a second)."""
        ids: list[str] = []
        now = self.clock()
        with self.db.tx() as conn:
            for spec in specs:
                tid = new_id("task")
                if spec.parent_id is not None and not self._exists(conn, spec.parent_id):
                    raise TaskNotFoundError(spec.parent_id)
                b = spec.budget
                conn.execute(
                    """INSERT INTO tasks(id, goal, state, priority, deadline, skills, budget_tokens, budget_tool_calls,
                       budget_credits, parent_id, max_attempts, approval, pause_tools, approval_default,
                       approval_timeout_s, created_at, updated_at)
                       VALUES (?, ?, 'posted', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (tid, redact_text(spec.goal), spec.priority, spec.deadline, json.dumps(sorted(set(spec.skills))), b.tokens,
                     b.tool_calls, b.credits, spec.parent_id, spec.max_attempts, spec.approval,
                     json.dumps(spec.pause_tools), spec.approval_default, spec.approval_timeout_s, now, now),
                )
                _event(conn, tid, None, "posted", actor, "posted", now)
                for dep in spec.depends_on:
                    self._add_dependency(conn, tid, dep)
                for i, step in enumerate(spec.plan):
                    conn.execute(
                        "INSERT INTO task_plan_steps(task_id, idx, title, depends_on, status, updated_at) "
                        "VALUES (?, ?, ?, ?, 'pending', ?)", (tid, i, step.title, json.dumps(step.depends_on), now),
                    )
                ids.append(tid)
        return self._get_many(ids)

    def _get_many(self, ids: list[str]) -> list[Task]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM tasks WHERE id IN (SELECT value FROM json_each(?))",
                             (json.dumps(ids),))
        by_id = {r["id"]: row_to_task(r) for r in rows}
        return [by_id[i] for i in ids]

    @staticmethod
    def _exists(conn: apsw.Connection, task_id: str) -> bool:
        return conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is not None

    def get(self, task_id: str) -> Task:
        row = self.db.one(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        if row is None:
            raise TaskNotFoundError(task_id)
        return row_to_task(row)

    def list_tasks(self, *, states: Iterable[TaskState] | None = None, limit: int = 100,
             parent_id: str | None = None) -> list[Task]:
        """Tasks, most important and newest first, optionally only in ``states`` or under a parent."""
        where, params = ["1"], []
        if states is not None:
            where.append("state IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(states)))
        if parent_id is not None:
            where.append("parent_id = ?")
            params.append(parent_id)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY priority DESC, rowid DESC LIMIT ?",
            (*params, limit),
        )
        return [row_to_task(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state (all states present, zero included)."""
        found = {r["state"]: r["n"] for r in self.db.query("SELECT state, count(*) AS n FROM tasks GROUP BY state")}
        return {s: int(found.get(s, 0)) for s in machine.STATES}

    def events(self, task_id: str) -> list[TaskEvent]:
        rows = self.db.query("SELECT * FROM task_events WHERE task_id = ? ORDER BY id", (task_id,))
        if not rows:
            self.get(task_id)  # raises TaskNotFoundError
        return [TaskEvent(**{**r, "data": json.loads(r["data"]) if r["data"] else None}) for r in rows]

    # -- dependencies ------------------------------------------------------------------------
    def add_dependency(self, task_id: str, depends_on: str) -> Task:
        """Make ``task_id`` wait for ``depends_on``; refused when it would close a cycle."""
        with self.db.tx() as conn:
            row = conn.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise TaskNotFoundError(task_id)
            if row["state"] not in ("posted", "bidding", "retry_wait"):
                raise TaskError(f"Task {task_id} is {row['state']}; dependencies can only be added before it starts.")
            self._add_dependency(conn, task_id, depends_on)
        return self.get(task_id)

    def _add_dependency(self, conn: apsw.Connection, task_id: str, dep: str) -> None:
        row = conn.execute("SELECT state FROM tasks WHERE id = ?", (dep,)).fetchone()
        if row is None:
            raise TaskNotFoundError(dep)
        path = self._path(conn, dep, task_id)
        if dep == task_id or path:
            raise DependencyCycleError([task_id, *path] if path else [task_id, task_id])
        inserted = conn.execute(
            "INSERT OR IGNORE INTO task_deps(task_id, depends_on) VALUES (?, ?) RETURNING 1", (task_id, dep)
        ).fetchall()
        if inserted and row["state"] != "completed":
            conn.execute("UPDATE tasks SET waiting_on = waiting_on + 1 WHERE id = ?", (task_id,))

    @staticmethod
    def _path(conn: apsw.Connection, start: str, goal: str) -> list[str]:
        """A dependency path from ``start`` to ``goal`` (both included), or [] when there is none."""
        rows = _rows(
            conn,
            """WITH RECURSIVE walk(id, path) AS (
                 SELECT ?1, json_array(?1)
                 UNION SELECT d.depends_on, json_insert(walk.path, '$[#]', d.depends_on)
                 FROM task_deps d JOIN walk ON d.task_id = walk.id
               ) SELECT path FROM walk WHERE id = ?2 LIMIT 1""",
            (start, goal),
        )
        return list(json.loads(rows[0]["path"])) if rows else []

    # -- claiming and leases -----------------------------------------------------------------
    def claim(self, worker: str, ttl_s: float, *, skills: Iterable[str] | None = None) -> Lease | None:
        """Atomically take the best ready task: resumable work first, then priority, the nearest deadline, age.

        The task goes straight to executing (two events: assigned, executing) so a claim costs
        one transaction. ``skills`` None accepts any task; otherwise the task's required skills
        must all be in it. A task awarded to one agent (``assignee``) is left to `claim_assigned`:
        a generic worker would run it as the wrong agent.
        """
        token = secrets.token_hex(8)
        now = self.clock()
        skill_filter = "" if skills is None else (
            "AND NOT EXISTS (SELECT 1 FROM json_each(tasks.skills) s "
            "WHERE s.value NOT IN (SELECT value FROM json_each(:skills)))"
        )
        with self.db.tx() as conn:
            rows = _rows(
                conn,
                f"""UPDATE tasks SET prev_state = state, state = 'executing', lease_owner = :worker,
                       lease_token = :token, lease_expires = :expires, attempts = attempts + 1, updated_at = :now
                    WHERE rowid = (SELECT rowid FROM tasks INDEXED BY tasks_ready
                                   WHERE state IN ('posted','retry_wait') AND waiting_on = 0
                                   AND not_before <= :now AND assignee IS NULL {skill_filter}
                                   ORDER BY resumable DESC, priority DESC, coalesce(deadline, 1e18), rowid LIMIT 1)
                    RETURNING id, prev_state, attempts""",
                {"worker": worker, "token": token, "expires": now + ttl_s, "now": now,
                 "skills": json.dumps(sorted(set(skills or [])))},
            )
            if not rows:
                return None
            tid, prev, attempt = rows[0]["id"], rows[0]["prev_state"], rows[0]["attempts"]
            _event(conn, tid, prev, "assigned", worker, f"claimed (attempt {attempt}, lease {ttl_s:g}s)", now)
            _event(conn, tid, "assigned", "executing", worker, "started", now)
        return Lease(task_id=tid, token=token, worker=worker, expires=now + ttl_s, attempt=attempt)

    def claim_assigned(self, worker: str, ttl_s: float, *, assignees: Iterable[str] | None = None) -> Lease | None:
        """Atomically take the oldest ready task awarded to an agent (the marketplace's winners).

        Ready: just awarded (``assigned`` without a lease), or back in the queue after a failed
        attempt, a lost lease or a person's approval (``retry_wait``/``posted`` past its backoff).
        ``assignees`` narrows the claim to tasks of those agents (the active ones). The same
        transaction as `claim`: the task goes to executing with a lease and two events.
        """
        token = secrets.token_hex(8)
        now = self.clock()
        agent_filter = "" if assignees is None else "AND assignee IN (SELECT value FROM json_each(:assignees))"
        with self.db.tx() as conn:
            rows = _rows(
                conn,
                f"""UPDATE tasks SET prev_state = state, state = 'executing', lease_owner = :worker,
                       lease_token = :token, lease_expires = :expires, attempts = attempts + 1, updated_at = :now
                    WHERE rowid = (SELECT rowid FROM tasks INDEXED BY tasks_assigned
                                   WHERE assignee IS NOT NULL AND lease_token IS NULL AND waiting_on = 0
                                   AND state IN ('assigned','retry_wait','posted') AND not_before <= :now
                                   {agent_filter} ORDER BY priority DESC, rowid LIMIT 1)
                    RETURNING id, prev_state, attempts""",
                {"worker": worker, "token": token, "expires": now + ttl_s, "now": now,
                 "assignees": json.dumps(sorted(set(assignees or [])))},
            )
            if not rows:
                return None
            tid, prev, attempt = rows[0]["id"], rows[0]["prev_state"], rows[0]["attempts"]
            if prev != "assigned":
                _event(conn, tid, prev, "assigned", worker, f"claimed (attempt {attempt}, lease {ttl_s:g}s)", now)
            _event(conn, tid, "assigned", "executing", worker, f"started (attempt {attempt}, lease {ttl_s:g}s)", now)
        return Lease(task_id=tid, token=token, worker=worker, expires=now + ttl_s, attempt=attempt)

    def check_lease(self, conn: apsw.Connection, lease: Lease, now: float) -> Row:
        """The task row if ``lease`` still holds it; otherwise `LeaseLostError` saying why.

        Call it inside the transaction that writes on the lease's behalf (checkpoints, plan
        steps do): the check and the write then cannot be split by another worker's claim.
        """
        row = conn.execute("SELECT state, lease_token, lease_expires, attempts, max_attempts FROM tasks WHERE id = ?",
                           (lease.task_id,)).fetchone()
        if row is None:
            raise TaskNotFoundError(lease.task_id)
        if row["lease_token"] != lease.token:
            raise LeaseLostError(lease.task_id, f"the task is {row['state']} under another lease or none")
        if row["lease_expires"] is None or row["lease_expires"] <= now:
            raise LeaseLostError(lease.task_id, "the lease expired before it was renewed")
        return dict(row)

    def heartbeat(self, lease: Lease, ttl_s: float) -> Lease:
        """Extend a held lease; raises `LeaseLostError` when it is no longer ours."""
        now = self.clock()
        with self.db.tx() as conn:
            self.check_lease(conn, lease, now)
            conn.execute("UPDATE tasks SET lease_expires = ? WHERE id = ?", (now + ttl_s, lease.task_id))
        return lease.model_copy(update={"expires": now + ttl_s})

    def complete(self, lease: Lease, result: str = "") -> Task:
        """Finish a task under a live lease; dependents waiting on it become ready."""
        now = self.clock()
        with self.db.tx() as conn:
            row = self.check_lease(conn, lease, now)
            machine.check(lease.task_id, row["state"], "completed")
            self._set(conn, lease.task_id, "completed", {**_CLEAR_LEASE, "result": result, "error": None}, now)
            _event(conn, lease.task_id, row["state"], "completed", lease.worker, "completed", now)
            conn.execute(
                "UPDATE tasks SET waiting_on = waiting_on - 1 WHERE id IN "
                "(SELECT task_id FROM task_deps WHERE depends_on = ?) AND waiting_on > 0", (lease.task_id,),
            )
        return self.get(lease.task_id)

    def fail(self, lease: Lease, error: str, *, retry: bool = True) -> Task:
        """Record a failed attempt: back to the queue after a backoff while attempts remain."""
        now = self.clock()
        with self.db.tx() as conn:
            row = self.check_lease(conn, lease, now)
            self._give_up_or_retry(conn, lease.task_id, row, lease.worker, error, now, retry=retry)
        return self.get(lease.task_id)

    def release(self, lease: Lease, reason: str) -> Task:
        """Hand a task back to the queue untouched (graceful shutdown); the attempt is not counted."""
        now = self.clock()
        with self.db.tx() as conn:
            row = self.check_lease(conn, lease, now)
            machine.check(lease.task_id, row["state"], "posted")
            self._set(conn, lease.task_id, "posted",
                      {**_CLEAR_LEASE, "attempts": max(0, row["attempts"] - 1), "awaiting": None,
                       "awaiting_expires": None}, now)
            _event(conn, lease.task_id, row["state"], "posted", lease.worker, reason, now)
        return self.get(lease.task_id)

    def _give_up_or_retry(self, conn: apsw.Connection, task_id: str, row: Row, actor: str, error: str,
                          now: float, *, retry: bool) -> TaskState:
        attempts = int(row["attempts"])
        to: TaskState = "retry_wait" if retry and attempts < int(row["max_attempts"]) else "failed"
        machine.check(task_id, row["state"], to)
        fields: dict[str, Any] = {**_CLEAR_LEASE, "error": error, "awaiting": None, "awaiting_expires": None}
        reason = error
        if to == "retry_wait":
            wait = backoff_s(attempts, self.backoff_base_s, self.backoff_max_s)
            fields["not_before"] = now + wait
            reason = f"{error} (attempt {attempts} of {row['max_attempts']}; retry in {wait:g}s)"
        elif retry:
            reason = f"{error} (gave up after {attempts} attempts)"
        self._set(conn, task_id, to, fields, now)
        _event(conn, task_id, row["state"], to, actor, reason, now)
        return to

    def reap(self) -> list[tuple[str, TaskState]]:
        """Return tasks whose lease expired to the queue with a backoff, or fail them when out of attempts."""
        now = self.clock()
        moved: list[tuple[str, TaskState]] = []
        with self.db.tx() as conn:
            rows = _rows(
                conn, "SELECT id, state, attempts, max_attempts, lease_owner FROM tasks "
                "WHERE lease_expires IS NOT NULL AND lease_expires <= ?", (now,),
            )
            for row in rows:
                error = f"lease of {row['lease_owner']} expired without a heartbeat"
                moved.append((row["id"], self._give_up_or_retry(conn, row["id"], row, "reaper", error, now,
                                                                retry=True)))
        return moved

    # -- people's actions --------------------------------------------------------------------
    def transition(self, task_id: str, to: TaskState, *, actor: str, reason: str,
                   fields: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                   expect: Iterable[TaskState] | None = None) -> Task:
        """Move a task along the table, unconditionally of leases (cancel, retry, approvals, bidding).

        ``expect`` narrows the states the caller is prepared to move from; anything else is an
        `IllegalTransitionError` and nothing changes.
        """
        now = self.clock()
        with self.db.tx() as conn:
            row = conn.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise TaskNotFoundError(task_id)
            state: TaskState = row["state"]
            if expect is not None and state not in set(expect):
                raise IllegalTransitionError(task_id, state, to, sorted(expect))
            machine.check(task_id, state, to)
            self._set(conn, task_id, to, dict(fields or {}), now)
            _event(conn, task_id, state, to, actor, reason, now, data)
        return self.get(task_id)

    def record_usage(self, lease: Lease, *, tokens: int = 0, tool_calls: int = 0) -> None:
        """Add spending to a task's running totals (the budget check reads them)."""
        with self.db.tx() as conn:
            self.check_lease(conn, lease, self.clock())
            conn.execute("UPDATE tasks SET used_tokens = used_tokens + ?, used_tool_calls = used_tool_calls + ?, "
                         "resumable = 1 WHERE id = ?", (tokens, tool_calls, lease.task_id))

    # -- the autonomy loop's queries, checkpoints and plans (SQL kept here, in the store) --------
    def has_ready(self) -> bool:
        """Whether a task waits in the queue (a worker checks before it builds a model and claims)."""
        return self.db.scalar(
            "SELECT 1 FROM tasks WHERE state IN ('posted','retry_wait') AND waiting_on = 0 LIMIT 1") is not None

    def expired_pauses(self) -> list[Row]:
        """Per-task approval pauses nobody answered in time: ``id`` and ``approval_default``."""
        return self.db.query(
            "SELECT id, approval_default FROM tasks WHERE state = 'awaiting_approval' AND lease_token IS NULL "
            "AND awaiting_expires IS NOT NULL AND awaiting_expires <= ?", (self.clock(),))

    def save_checkpoint(self, lease: Lease, step: str, kind: str, body: bytes) -> bool:
        """Record a finished step's packed body; False when the step was already recorded."""
        now = self.clock()
        with self.db.tx() as conn:
            self.check_lease(conn, lease, now)
            rows = conn.execute(
                "INSERT OR IGNORE INTO task_checkpoints(task_id, step, kind, attempt, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (lease.task_id, step, kind, lease.attempt, body, now),
            ).fetchall()
            conn.execute("UPDATE tasks SET resumable = 1 WHERE id = ? AND resumable = 0", (lease.task_id,))
        return bool(rows)

    def checkpoint_rows(self, task_id: str) -> list[Row]:
        """A task's checkpoints as stored (packed bodies), in the order they were written."""
        return self.db.query("SELECT step, kind, attempt, body, created_at FROM task_checkpoints WHERE task_id = ? "
                             "ORDER BY id", (task_id,))

    def compact_checkpoints(self, older_than: float,
                            summarize: Callable[[list[Row]], bytes]) -> tuple[int, int, int, int]:
        """Replace the checkpoints of tasks finished before ``older_than`` by one summary row each.

        Returns (tasks, rows removed, payload bytes before, payload bytes after).
        """
        tasks = [r["id"] for r in self.db.query(
            "SELECT DISTINCT c.task_id AS id FROM task_checkpoints c JOIN tasks t ON t.id = c.task_id "
            "WHERE t.state IN ('completed','failed','cancelled') AND t.updated_at < ? AND c.kind != 'summary'",
            (older_than,))]
        removed = before = after = 0
        for task_id in tasks:
            with self.db.tx() as conn:
                rows = [dict(r) for r in conn.execute(
                    "SELECT kind, attempt, body FROM task_checkpoints WHERE task_id = ? ORDER BY id", (task_id,))]
                before += sum(len(r["body"]) for r in rows)
                blob = summarize(rows)
                after += len(blob)
                conn.execute("DELETE FROM task_checkpoints WHERE task_id = ?", (task_id,))
                conn.execute("INSERT INTO task_checkpoints(task_id, step, kind, attempt, body, created_at) "
                             "VALUES (?, 'summary', 'summary', 0, ?, ?)", (task_id, blob, time.time()))
                removed += len(rows)
        return len(tasks), removed, before, after

    def load_plan(self, task_id: str) -> list[PlanStep]:
        rows = self.db.query("SELECT title, depends_on, status, result FROM task_plan_steps WHERE task_id = ? "
                             "ORDER BY idx", (task_id,))
        return [PlanStep(title=r["title"], depends_on=json.loads(r["depends_on"]), status=r["status"],
                         result=r["result"]) for r in rows]

    def set_plan_step(self, lease: Lease, idx: int, status: StepStatus, result: str | None = None) -> None:
        """Update one step under the worker's lease (`LeaseLostError` when the task is no longer ours)."""
        with self.db.tx() as conn:
            self.check_lease(conn, lease, self.clock())
            conn.execute("UPDATE task_plan_steps SET status = ?, result = coalesce(?, result), updated_at = ? "
                         "WHERE task_id = ? AND idx = ?", (status, result, self.clock(), lease.task_id, idx))
            conn.execute("UPDATE tasks SET resumable = 1 WHERE id = ? AND resumable = 0", (lease.task_id,))

    @staticmethod
    def _set(conn: apsw.Connection, task_id: str, state: TaskState, fields: dict[str, Any], now: float) -> None:
        cols = {"state": state, "updated_at": now, **fields}
        for key in ("result", "error"):  # free text from the model or a failure: no secret at rest
            if isinstance(cols.get(key), str):
                cols[key] = redact_text(cols[key])
        conn.execute(f"UPDATE tasks SET {', '.join(f'{k} = :{k}' for k in cols)} WHERE id = :_id",
                     {**cols, "_id": task_id})
