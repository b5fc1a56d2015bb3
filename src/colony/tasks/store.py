"""Durable task storage: post, claim with a lease, heartbeat, complete, reap — on SQLite.

Why the claim is safe under contention: the whole claim is one ``BEGIN IMMEDIATE`` transaction.
The immediate transaction takes SQLite's single write lock before reading, so no two
connections — threads or processes — can pick the same row; the claim's first event is written by
an ``INSERT … SELECT`` that picks the best ready row, and the row is updated in the same
transaction, so a claim and its history never disagree.

Why completion cannot happen twice: every lease carries a random token. Heartbeat, completion
and failure only touch the row when the token matches *and* the lease has not expired; a worker
that stalled past its TTL finds its token replaced (the reaper moved the task on) or its lease
expired, and gets `LeaseLostError` instead of a second "completed" event.

Why a transition writes so few pages (schema migration 16): in WAL mode a commit appends every
page it dirtied to the log, and a checkpoint later copies each into the database file, so the
number of b-trees a transition touches is its I/O cost. A claim writes the task row, its ready
and lease index entries and the last page of ``task_events``; a completion the row, the lease
entry and the event. A task's history is found through a chain — ``tasks.last_event`` names its
newest event, each event names the one before it (``prev``) — rather than through an index on
``task_events(task_id, id)``, whose leaf (a random one: task ids are random) was one more page per
commit; and the state index holds only the states off that path (`OFF_PATH_STATES`).

Why checkpoints are not on the claim path: see `colony.tasks._wal`.

The queue is behind the `TaskStore` protocol so a remote or marketplace-backed queue can stand
in later; `SqliteTaskStore` is the implementation a node uses.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol, cast

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
from colony.tasks._wal import RESTART_WAIT_S, keeper_for
from colony.tasks.models import Budget, Lease, PlanStep, StepStatus, Task, TaskEvent, TaskSpec, TaskState

__all__ = ["PeopleActions", "SqliteTaskStore", "TaskStore", "backoff_s", "reap_reason", "row_to_task"]


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
    def reap(self, gone: Callable[[str], bool] | None = None) -> list[tuple[str, TaskState]]: ...
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


def reap_reason(row: Row, now: float, gone: Callable[[str], bool] | None) -> str | None:
    """Why the reaper takes this leased row back (both engines), or None when its lease stands."""
    if row["lease_expires"] <= now:
        return f"lease of {row['lease_owner']} expired without a heartbeat"
    if gone is not None and row["lease_owner"] and gone(row["lease_owner"]):
        return f"lease of {row['lease_owner']} taken back: that process is gone"
    return None


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Exponential backoff before attempt ``attempts + 1``: base, 2·base, 4·base … capped."""
    return float(min(max_s, base_s * (2 ** max(0, attempts - 1))))


_COLUMNS = "tasks.*, (SELECT json_group_array(depends_on) FROM task_deps WHERE task_id = tasks.id) AS deps"

#: The states the partial index ``tasks_state`` holds (migration 16). A queued task's row goes
#: posted → executing → completed (a claim's "assigned" is an event, never the row's state)
#: without touching it; listing these states stays an index lookup, the others (and
#: `SqliteTaskStore.counts`) read the table.
OFF_PATH_STATES: frozenset[TaskState] = frozenset(
    {"bidding", "assigned", "awaiting_approval", "retry_wait", "failed", "cancelled"})
_OFF_PATH_SQL = "state NOT IN ('posted','executing','completed')"

#: A task's history, oldest first: walk its chain from ``tasks.last_event`` back through ``prev``.
#: CROSS JOIN keeps the chain the outer loop (SQLite does not reorder it): one rowid lookup per event,
#: never a scan of every task's events.
_HISTORY = """WITH RECURSIVE chain(id) AS (
        SELECT last_event FROM tasks WHERE id = ?
        UNION ALL SELECT e.prev FROM task_events e JOIN chain ON e.id = chain.id WHERE e.prev IS NOT NULL)
    SELECT e.id, e.task_id, e.from_state, e.to_state, e.actor, e.reason, e.at, e.data
    FROM chain CROSS JOIN task_events e ON e.id = chain.id ORDER BY e.id"""


def _json_list(text: str | None) -> list[Any]:
    """A stored JSON array; the empty one, by far the commonest, without the parser."""
    return [] if text is None or text == "[]" else list(json.loads(text))


def row_to_task(row: Row) -> Task:
    return Task(
        id=row["id"], goal=row["goal"], state=row["state"], priority=row["priority"], deadline=row["deadline"],
        skills=_json_list(row["skills"]),
        # budget_credits is a REAL column: whole credits come back as floats (5.0) and are ints again here.
        budget=Budget(tokens=row["budget_tokens"], tool_calls=row["budget_tool_calls"],
                      credits=None if row["budget_credits"] is None else int(row["budget_credits"])),
        used_tokens=row["used_tokens"], used_tool_calls=row["used_tool_calls"], parent_id=row["parent_id"],
        depends_on=_json_list(row["deps"]), waiting_on=row["waiting_on"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], not_before=row["not_before"], lease_owner=row["lease_owner"],
        lease_expires=row["lease_expires"], approval=row["approval"], approved=bool(row["approved"]),
        pause_tools=_json_list(row["pause_tools"]), approval_default=row["approval_default"],
        approval_timeout_s=row["approval_timeout_s"],
        awaiting=json.loads(row["awaiting"]) if row["awaiting"] else None, awaiting_expires=row["awaiting_expires"],
        result=row["result"], error=row["error"], created_at=row["created_at"], updated_at=row["updated_at"],
        assignee=row.get("assignee"),
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
    """`TaskStore` over the node database. ``clock`` is injectable so tests can expire leases.

    ``background_checkpoints`` False leaves the WAL to SQLite's autocheckpoint on the store's
    connections (as before migration 16): for measuring, with a WAL hook of one's own.
    """

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time,
                 backoff_base_s: float = 2.0, backoff_max_s: float = 300.0,
                 background_checkpoints: bool = True) -> None:
        self.db = db
        self.clock = clock
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.background_checkpoints = background_checkpoints

    def _tx(self) -> AbstractContextManager[apsw.Connection]:
        """`Database.tx` with this connection's checkpoints handed to the database's WAL keeper (`colony.tasks._wal`).

        When the log has grown long, the keeper first makes it start over (`colony.tasks._wal`)
        — between two transactions, never inside a caller's. Lock waits keep SQLite's own busy
        handler: measured with 4 and 8 worker processes on two cores, finer polling (as the
        ledger's writes use) only took CPU from the lock's holder.
        """
        if not self.background_checkpoints:
            return self.db.tx()
        keeper, conn = keeper_for(self.db), self.db.connection()
        keeper.hook(self.db, conn)
        if not conn.in_transaction:
            if keeper.restart_due:
                keeper.restart_log(self.db)
            elif not keeper.open.is_set():
                keeper.open.wait(2 * RESTART_WAIT_S)
        return self.db.tx()

    # -- posting and reading -----------------------------------------------------------------
    def post(self, spec: TaskSpec, *, actor: str = "user") -> Task:
        return self.post_many([spec], actor=actor)[0]

    def post_many(self, specs: Iterable[TaskSpec], *, actor: str = "user") -> list[Task]:
        """Post several tasks in one transaction (a batch of 5,000 takes well under a second).

        Each task's "posted" event gets its id up front (the transaction holds the only write
        lock, so the next ids are known) so the row is written once, already pointing at it.
        """
        ids: list[str] = []
        now = self.clock()
        with self._tx() as conn:
            event = int(_rows(conn, "SELECT coalesce(max(id), 0) AS top FROM task_events")[0]["top"])
            for spec in specs:
                tid = new_id("task")
                if spec.parent_id is not None and not self._exists(conn, spec.parent_id):
                    raise TaskNotFoundError(spec.parent_id)
                b = spec.budget
                event += 1
                conn.execute(
                    """INSERT INTO tasks(id, goal, state, priority, deadline, skills, budget_tokens, budget_tool_calls,
                       budget_credits, parent_id, max_attempts, approval, pause_tools, approval_default,
                       approval_timeout_s, created_at, updated_at, last_event)
                       VALUES (?, ?, 'posted', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (tid, redact_text(spec.goal), spec.priority, spec.deadline, json.dumps(sorted(set(spec.skills))), b.tokens,
                     b.tool_calls, b.credits, spec.parent_id, spec.max_attempts, spec.approval,
                     json.dumps(spec.pause_tools), spec.approval_default, spec.approval_timeout_s, now, now, event),
                )
                conn.execute("INSERT INTO task_events(id, task_id, to_state, actor, reason, at) "
                             "VALUES (?, ?, 'posted', ?, 'posted', ?)", (event, tid, actor, now))
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
        """Tasks, most important and newest first, optionally only in ``states`` or under a parent.

        States off the claim path are found through the partial index ``tasks_state``: the
        query repeats that index's condition, which is how SQLite knows it may use it.
        """
        where, params = ["1"], []
        if states is not None:
            wanted = list(states)
            where.append("state IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(wanted))
            if set(wanted) <= OFF_PATH_STATES:
                where.append(_OFF_PATH_SQL)
        if parent_id is not None:
            where.append("parent_id = ?")
            params.append(parent_id)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY priority DESC, rowid DESC LIMIT ?",
            (*params, limit),
        )
        return [row_to_task(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state (all states present, zero included).

        One pass over the table: an index over every task's state would be rewritten by every
        claim and completion, two more pages per task (migration 16 dropped it).
        """
        found = {r["state"]: r["n"] for r in self.db.query("SELECT state, count(*) AS n FROM tasks GROUP BY state")}
        return {s: int(found.get(s, 0)) for s in machine.STATES}

    def events(self, task_id: str) -> list[TaskEvent]:
        rows = self.db.query(_HISTORY, (task_id,))
        if not rows:
            self.get(task_id)  # raises TaskNotFoundError
        return [TaskEvent(**{**r, "data": json.loads(r["data"]) if r["data"] else None}) for r in rows]

    # -- dependencies ------------------------------------------------------------------------
    def add_dependency(self, task_id: str, depends_on: str) -> Task:
        """Make ``task_id`` wait for ``depends_on``; refused when it would close a cycle."""
        with self._tx() as conn:
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
        one transaction: the first event is inserted from the row the claim picks (``INSERT …
        SELECT … LIMIT 1``), the second after it, then the row takes the lease and points at the
        second. ``skills`` None accepts any task; otherwise the task's required skills must all
        be in it. A task awarded to one agent (``assignee``) is left to `claim_assigned`: a
        generic worker would run it as the wrong agent.
        """
        token = secrets.token_hex(8)
        now = self.clock()
        skill_filter = "" if skills is None else (
            "AND NOT EXISTS (SELECT 1 FROM json_each(tasks.skills) s "
            "WHERE s.value NOT IN (SELECT value FROM json_each(:skills)))"
        )
        with self._tx() as conn:
            picked = _rows(
                conn,
                f"""INSERT INTO task_events(task_id, prev, from_state, to_state, actor, reason, at)
                    SELECT id, last_event, state, 'assigned', :worker, 'claimed (attempt ' || (attempts + 1) || :lease, :now
                    FROM tasks INDEXED BY tasks_ready
                    WHERE state IN ('posted','retry_wait') AND waiting_on = 0
                    AND not_before <= :now AND assignee IS NULL {skill_filter}
                    ORDER BY resumable DESC, priority DESC, coalesce(deadline, 1e18), rowid LIMIT 1
                    RETURNING id, task_id""",
                {"worker": worker, "now": now, "lease": f", lease {ttl_s:g}s)",
                 "skills": None if skills is None else json.dumps(sorted(set(skills)))},
            )
            if not picked:
                return None
            tid = picked[0]["task_id"]
            attempt = self._start(conn, tid, picked[0]["id"], worker, token, now + ttl_s, now, "started")
        return Lease(task_id=tid, token=token, worker=worker, expires=now + ttl_s, attempt=attempt)

    @staticmethod
    def _start(conn: apsw.Connection, task_id: str, assigned_event: int, worker: str, token: str,
               expires: float, now: float, reason: str) -> int:
        """The second half of a claim: the "executing" event after ``assigned_event``, then the
        row under the new lease, pointing at that event. Returns the attempt number."""
        conn.execute("INSERT INTO task_events(task_id, prev, from_state, to_state, actor, reason, at) "
                     "VALUES (?, ?, 'assigned', 'executing', ?, ?, ?)", (task_id, assigned_event, worker, reason, now))
        rows = _rows(
            conn, "UPDATE tasks SET prev_state = state, state = 'executing', lease_owner = ?, lease_token = ?, "
            "lease_expires = ?, attempts = attempts + 1, updated_at = ?, last_event = last_insert_rowid() "
            "WHERE id = ? RETURNING attempts", (worker, token, expires, now, task_id))
        return int(rows[0]["attempts"])

    def claim_assigned(self, worker: str, ttl_s: float, *, assignees: Iterable[str] | None = None) -> Lease | None:
        """Atomically take the oldest ready task awarded to an agent (the marketplace's winners).

        Ready: just awarded (``assigned`` without a lease), or back in the queue after a failed
        attempt, a lost lease or a person's approval (``retry_wait``/``posted`` past its backoff).
        ``assignees`` narrows the claim to tasks of those agents' accounts (the node's active
        agents: names are local to a node, accounts are not — migration 20). The same
        transaction as `claim`: the task goes to executing with a lease, through "assigned"
        first when it was back in the queue.
        """
        token = secrets.token_hex(8)
        now = self.clock()
        agent_filter = "" if assignees is None else "AND assignee IN (SELECT value FROM json_each(:assignees))"
        with self._tx() as conn:
            rows = _rows(
                conn,
                f"""SELECT id, state, attempts, last_event FROM tasks INDEXED BY tasks_assigned
                    WHERE assignee IS NOT NULL AND lease_token IS NULL AND waiting_on = 0
                    AND state IN ('assigned','retry_wait','posted') AND not_before <= :now
                    {agent_filter} ORDER BY priority DESC, rowid LIMIT 1""",
                {"now": now, "assignees": json.dumps(sorted(set(assignees or [])))},
            )
            if not rows:
                return None
            tid, state, assigned = rows[0]["id"], rows[0]["state"], rows[0]["last_event"]
            lease_text = f"(attempt {rows[0]['attempts'] + 1}, lease {ttl_s:g}s)"
            if state != "assigned":
                assigned = int(_rows(
                    conn, "INSERT INTO task_events(task_id, prev, from_state, to_state, actor, reason, at) "
                    "VALUES (?, ?, ?, 'assigned', ?, ?, ?) RETURNING id",
                    (tid, assigned, state, worker, f"claimed {lease_text}", now))[0]["id"])
            attempt = self._start(conn, tid, assigned, worker, token, now + ttl_s, now, f"started {lease_text}")
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
        """Extend a held lease; raises `LeaseLostError` when it is no longer ours.

        One conditional update; only when it matches nothing is the row read, to say why.
        """
        now = self.clock()
        with self._tx() as conn:
            renewed = conn.execute(
                "UPDATE tasks SET lease_expires = ? WHERE id = ? AND lease_token = ? AND lease_expires > ? RETURNING 1",
                (now + ttl_s, lease.task_id, lease.token, now)).fetchall()
            if not renewed:
                self.check_lease(conn, lease, now)
                raise LeaseLostError(lease.task_id, "the lease is no longer held")
        return lease.model_copy(update={"expires": now + ttl_s})

    def complete(self, lease: Lease, result: str = "") -> Task:
        """Finish a task under a live lease; dependents waiting on it become ready.

        The lease is checked by the write itself (the event is inserted only from a row the
        token still holds). The task is read back after the commit, outside the write lock:
        ``RETURNING *`` costs more than that read, and inside the lock.
        """
        now = self.clock()
        move = _prepare(lease.task_id, "completed", actor=lease.worker, reason="completed", now=now,
                        fields={**_CLEAR_LEASE, "result": result, "error": None}, lease=lease)
        with self._tx() as conn:
            self._move(conn, move)
            conn.execute(
                "UPDATE tasks SET waiting_on = waiting_on - 1 WHERE id IN "
                "(SELECT task_id FROM task_deps WHERE depends_on = ?) AND waiting_on > 0", (lease.task_id,),
            )
        return self.get(lease.task_id)

    def fail(self, lease: Lease, error: str, *, retry: bool = True) -> Task:
        """Record a failed attempt: back to the queue after a backoff while attempts remain."""
        now = self.clock()
        with self._tx() as conn:
            row = self.check_lease(conn, lease, now)
            self._give_up_or_retry(conn, lease.task_id, row, lease.worker, error, now, retry=retry)
        return self.get(lease.task_id)

    def release(self, lease: Lease, reason: str) -> Task:
        """Hand a task back to the queue untouched (graceful shutdown); the attempt is not counted."""
        now = self.clock()
        with self._tx() as conn:
            row = self.check_lease(conn, lease, now)
            machine.check(lease.task_id, row["state"], "posted")
            self._move(conn, _prepare(lease.task_id, "posted", actor=lease.worker, reason=reason, now=now,
                                      fields={**_CLEAR_LEASE, "attempts": max(0, row["attempts"] - 1),
                                              "awaiting": None, "awaiting_expires": None}))
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
        self._move(conn, _prepare(task_id, to, actor=actor, reason=reason, now=now, fields=fields))
        return to

    def reap(self, gone: Callable[[str], bool] | None = None) -> list[tuple[str, TaskState]]:
        """Return tasks whose lease expired to the queue with a backoff, or fail them when out of attempts.

        ``gone(owner)`` (`colony.tasks.owners.gone`) also reaps the leases of owners known to be dead,
        expired or not: a killed worker's tasks go back at once instead of after the lease's TTL.
        """
        now = self.clock()
        moved: list[tuple[str, TaskState]] = []
        with self._tx() as conn:
            rows = _rows(
                conn, "SELECT id, state, attempts, max_attempts, lease_owner, lease_expires FROM tasks "
                "WHERE lease_expires IS NOT NULL" + ("" if gone else " AND lease_expires <= ?"),
                () if gone else (now,),
            )
            for row in rows:
                error = reap_reason(row, now, gone)
                if error is not None:
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
        move = _prepare(task_id, to, actor=actor, reason=reason, now=now, fields=dict(fields or {}), data=data)
        with self._tx() as conn:
            row = conn.execute("SELECT state FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise TaskNotFoundError(task_id)
            state: TaskState = row["state"]
            if expect is not None and state not in set(expect):
                raise IllegalTransitionError(task_id, state, to, sorted(expect))
            machine.check(task_id, state, to)
            self._move(conn, move)
        return self.get(task_id)

    def record_usage(self, lease: Lease, *, tokens: int = 0, tool_calls: int = 0) -> None:
        """Add spending to a task's running totals (the budget check reads them)."""
        with self._tx() as conn:
            self.check_lease(conn, lease, self.clock())
            conn.execute("UPDATE tasks SET used_tokens = used_tokens + ?, used_tool_calls = used_tool_calls + ?, "
                         "resumable = 1 WHERE id = ?", (tokens, tool_calls, lease.task_id))

    # -- the autonomy loop's queries, checkpoints and plans (SQL kept here, in the store) --------
    def has_ready(self) -> bool:
        """Whether a generic worker could claim a task now (it checks before it builds a model and claims).

        The same condition as `claim` without the skills: a task still in its backoff, or awarded
        to one agent (left to `claim_assigned`), does not count.
        """
        return self.db.scalar(  # the ready index, whatever the planner's statistics say about the table
            "SELECT 1 FROM tasks INDEXED BY tasks_ready WHERE state IN ('posted','retry_wait') AND waiting_on = 0 "
            "AND not_before <= ? AND assignee IS NULL LIMIT 1", (self.clock(),)) is not None

    def expired_pauses(self) -> list[Row]:
        """Per-task approval pauses nobody answered in time: ``id`` and ``approval_default``."""
        return self.db.query(
            "SELECT id, approval_default FROM tasks WHERE state = 'awaiting_approval' AND lease_token IS NULL "
            "AND awaiting_expires IS NOT NULL AND awaiting_expires <= ?", (self.clock(),))

    def save_checkpoint(self, lease: Lease, step: str, kind: str, body: bytes) -> bool:
        """Record a finished step's packed body; False when the step was already recorded."""
        now = self.clock()
        with self._tx() as conn:
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
            with self._tx() as conn:
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
        with self._tx() as conn:
            self.check_lease(conn, lease, self.clock())
            conn.execute("UPDATE task_plan_steps SET status = ?, result = coalesce(?, result), updated_at = ? "
                         "WHERE task_id = ? AND idx = ?", (status, result, self.clock(), lease.task_id, idx))
            conn.execute("UPDATE tasks SET resumable = 1 WHERE id = ? AND resumable = 0", (lease.task_id,))

    def _move(self, conn: apsw.Connection, move: _Move) -> None:
        """One transition, inside the caller's transaction: its event, then the row.

        The event comes first, inserted from the row it describes (``from_state`` is the row's
        state, ``prev`` its newest event), and the row is then updated to point at it. With a
        lease, the insert only matches a row that lease still holds, so checking the lease costs
        no statement of its own; when it matches nothing, the row is read to say why.
        """
        moved = _rows(conn, move.insert, move.event)
        if not moved:
            if move.lease is None:
                raise TaskNotFoundError(move.task_id)
            self.check_lease(conn, move.lease, move.event["now"])
            raise LeaseLostError(move.task_id, "the lease is no longer held")
        machine.check(move.task_id, moved[0]["from_state"], move.to)  # raising rolls the event back too
        conn.execute(move.update, move.row)


class _Move(NamedTuple):
    """A transition's two statements and their parameters, ready before the write lock is taken.

    Everything here (redacting free text — a long result takes a while — and building the SQL)
    needs no lock, so `_prepare` does it first and the transaction holds the lock only for SQL.
    """

    task_id: str
    to: TaskState
    lease: Lease | None
    insert: str
    event: dict[str, Any]
    update: str
    row: dict[str, Any]


def _prepare(task_id: str, to: TaskState, *, actor: str, reason: str, now: float, fields: dict[str, Any],
             data: dict[str, Any] | None = None, lease: Lease | None = None) -> _Move:
    """`SqliteTaskStore._move`'s statements for one transition; free text (reason, result, error) redacted."""
    cols = {"state": to, "updated_at": now, **fields}
    for key in ("result", "error"):  # free text from the model or a failure: no secret at rest
        if isinstance(cols.get(key), str):
            cols[key] = redact_text(cols[key])
    event = {"task": task_id, "to": to, "actor": actor, "reason": redact_text(reason), "now": now,
             "token": lease.token if lease is not None else None,
             "data": json.dumps(redact(data)) if data is not None else None}
    return _Move(task_id, to, lease, _INSERT_GUARDED if lease is not None else _INSERT, event,
                 _update_sql(tuple(cols)), {**{f"f_{k}": v for k, v in cols.items()}, "task": task_id})


#: A transition's event, from the row it describes; the guarded one only from a row the lease holds.
_INSERT = ("INSERT INTO task_events(task_id, prev, from_state, to_state, actor, reason, at, data) "
           "SELECT id, last_event, state, :to, :actor, :reason, :now, :data FROM tasks WHERE id = :task "
           "RETURNING from_state")
_INSERT_GUARDED = _INSERT.replace("WHERE id = :task", "WHERE id = :task AND lease_token = :token AND lease_expires > :now")


@functools.lru_cache(maxsize=64)
def _update_sql(columns: tuple[str, ...]) -> str:
    """`SqliteTaskStore._move`'s row update for these columns (a handful of shapes, built once each)."""
    return (f"UPDATE tasks SET {', '.join(f'{k} = :f_{k}' for k in columns)}, last_event = last_insert_rowid() "
            "WHERE id = :task")
