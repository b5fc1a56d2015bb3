"""The task queue on PostgreSQL: the `TaskStore` many nodes share.

Same contract as `SqliteTaskStore` (the contract suite runs the same assertions on both); what
changes is how each guarantee is kept when writers are not serialised by one file lock:

- **claims** take the best ready row with ``SELECT … FOR UPDATE SKIP LOCKED`` inside the claiming
  ``UPDATE``: concurrent workers each lock a different row instead of queueing behind one, and a
  row locked by a claim in flight is skipped, never claimed twice. The claim, its two events and
  (in `complete`) the completion, its event and the freed dependents are each one statement of
  data-modifying CTEs: atomic on its own, one round trip instead of a transaction's five or more;
- **every read-then-write** (lease checks, transitions, the reaper) locks the task row first
  (``FOR UPDATE``), so a completion and the reaper, or a person's decision and a timeout,
  serialise on the row: the second sees the first's outcome and the transition table refuses it;
- **dependencies** take one transaction-level advisory lock, so two concurrent edits cannot each
  pass the cycle check and close a cycle together;
- **idle workers** sleep in `wait_for_work` on ``LISTEN colony_tasks``: posting, requeueing and
  completing a task others wait on send ``NOTIFY`` in the same transaction (delivered on commit),
  so a posted task wakes a worker at once instead of at its next poll. The wait is also cut short
  at the earliest backoff expiry, when a retrying task becomes claimable without any write.

Leases, tokens, the reaper and the event history are as on SQLite (see `colony.tasks.store`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from psycopg import sql

from colony.errors import (
    DependencyCycleError,
    IllegalTransitionError,
    LeaseLostError,
    TaskError,
    TaskNotFoundError,
)
from colony.redaction import redact, redact_text
from colony.store import Row
from colony.store.pg import PgConnection, PgDatabase
from colony.store.sessions import new_id
from colony.tasks import machine
from colony.tasks.models import Lease, PlanStep, StepStatus, Task, TaskEvent, TaskSpec, TaskState
from colony.tasks.store import PeopleActions, backoff_s, reap_reason, row_to_task

__all__ = ["CHANNEL", "PgTaskStore"]

#: The NOTIFY channel idle workers listen on.
CHANNEL = "colony_tasks"

_COLUMNS = (
    "t.id, t.goal, t.state, t.priority, t.deadline, t.skills::text AS skills, t.budget_tokens, t.budget_tool_calls, "
    "t.budget_credits, t.used_tokens, t.used_tool_calls, t.parent_id, t.waiting_on, t.attempts, t.max_attempts, "
    "t.not_before, t.lease_owner, t.lease_expires, t.approval, t.approved, t.pause_tools, t.approval_default, "
    "t.approval_timeout_s, t.awaiting, t.awaiting_expires, t.result, t.error, t.created_at, t.updated_at, "
    "t.assignee, (SELECT coalesce(json_agg(d.depends_on ORDER BY d.depends_on), '[]')::text FROM task_deps d "
    "WHERE d.task_id = t.id) AS deps"
)
#: The columns `_set` may write: callers pass field names, and only these become SQL identifiers.
_WRITABLE = frozenset({
    "state", "updated_at", "lease_owner", "lease_token", "lease_expires", "attempts", "not_before", "error",
    "result", "awaiting", "awaiting_expires", "approved", "prev_state", "resumable", "assignee",
})
_CLEAR_LEASE: dict[str, Any] = {"lease_owner": None, "lease_token": None, "lease_expires": None}
#: The advisory lock that serialises dependency edits (any constant; "deps" in ASCII).
_DEPS_LOCK = 0x64657073
#: The states the transition table lets a task complete from (the table stays the authority).
_COMPLETABLE = [s for s in machine.STATES if "completed" in machine.TRANSITIONS[s]]
_COMPLETE = """
WITH cur AS (
    SELECT id, state, lease_token, lease_expires FROM tasks WHERE id = %(id)s FOR UPDATE),
done AS (
    UPDATE tasks t SET state = 'completed', updated_at = %(now)s, lease_owner = NULL, lease_token = NULL,
       lease_expires = NULL, result = %(result)s, error = NULL
    FROM cur WHERE t.id = cur.id AND cur.lease_token = %(token)s AND cur.lease_expires > %(now)s
       AND cur.state = ANY(%(from)s)
    RETURNING t.id, cur.state AS from_state),
events AS (
    INSERT INTO task_events(task_id, from_state, to_state, actor, reason, at)
    SELECT id, from_state, 'completed', %(actor)s, 'completed', %(now)s FROM done),
freed AS (
    UPDATE tasks SET waiting_on = waiting_on - 1
    WHERE id IN (SELECT d.task_id FROM task_deps d JOIN done ON d.depends_on = done.id) AND waiting_on > 0
    RETURNING id)
SELECT cur.state, cur.lease_token, cur.lease_expires, EXISTS (SELECT 1 FROM done) AS done,
       (SELECT count(pg_notify(%(channel)s, '')) FROM (SELECT 1 FROM freed LIMIT 1) f) AS notified
FROM cur"""


def _event(conn: PgConnection, task_id: str, from_state: TaskState | None, to_state: TaskState, actor: str,
           reason: str, at: float, data: dict[str, Any] | None = None) -> None:
    conn.execute(
        "INSERT INTO task_events(task_id, from_state, to_state, actor, reason, at, data) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (task_id, from_state, to_state, actor, redact_text(reason), at,
         json.dumps(redact(data)) if data is not None else None),
    )
    if to_state in machine.QUEUED_STATES:
        conn.execute(f"NOTIFY {CHANNEL}")  # one per transaction: PostgreSQL folds duplicates


class PgTaskStore(PeopleActions):
    """`TaskStore` over a node's PostgreSQL pool. ``clock`` is injectable so tests can expire leases."""

    def __init__(self, db: PgDatabase, *, clock: Callable[[], float] = time.time,
                 backoff_base_s: float = 2.0, backoff_max_s: float = 300.0) -> None:
        self.db = db
        self.clock = clock
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s

    # -- posting and reading -----------------------------------------------------------------
    def post(self, spec: TaskSpec, *, actor: str = "user") -> Task:
        return self.post_many([spec], actor=actor)[0]

    def post_many(self, specs: Iterable[TaskSpec], *, actor: str = "user") -> list[Task]:
        """Post several tasks in one transaction; rows and events go in pipelined batches."""
        specs = list(specs)
        now = self.clock()
        ids = [new_id("task") for _ in specs]
        with self.db.tx() as conn:
            parents = sorted({s.parent_id for s in specs if s.parent_id is not None})
            if parents:
                found = {r["id"] for r in conn.execute("SELECT id FROM tasks WHERE id = ANY(%s)", (parents,))}
                missing = [p for p in parents if p not in found]
                if missing:
                    raise TaskNotFoundError(missing[0])
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO tasks(id, goal, state, priority, deadline, skills, budget_tokens, budget_tool_calls,
                       budget_credits, parent_id, max_attempts, approval, pause_tools, approval_default,
                       approval_timeout_s, created_at, updated_at)
                       VALUES (%s, %s, 'posted', %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    [(tid, redact_text(s.goal), s.priority, s.deadline, json.dumps(sorted(set(s.skills))),
                      s.budget.tokens, s.budget.tool_calls, s.budget.credits, s.parent_id, s.max_attempts,
                      s.approval, json.dumps(s.pause_tools), s.approval_default, s.approval_timeout_s, now, now)
                     for tid, s in zip(ids, specs, strict=True)],
                )
                cur.executemany(
                    "INSERT INTO task_events(task_id, from_state, to_state, actor, reason, at) "
                    "VALUES (%s, NULL, 'posted', %s, 'posted', %s)", [(tid, actor, now) for tid in ids])
                steps = [(tid, i, step.title, json.dumps(step.depends_on), now)
                         for tid, s in zip(ids, specs, strict=True) for i, step in enumerate(s.plan)]
                if steps:
                    cur.executemany("INSERT INTO task_plan_steps(task_id, idx, title, depends_on, status, updated_at) "
                                    "VALUES (%s, %s, %s, %s, 'pending', %s)", steps)
            if any(s.depends_on for s in specs):
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DEPS_LOCK,))
                for tid, s in zip(ids, specs, strict=True):
                    for dep in s.depends_on:
                        self._add_dependency(conn, tid, dep)
            if ids:
                conn.execute(f"NOTIFY {CHANNEL}")
        return self._get_many(ids)

    def _get_many(self, ids: list[str]) -> list[Task]:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM tasks t WHERE t.id = ANY(%s)", (ids,))
        by_id = {r["id"]: row_to_task(r) for r in rows}
        return [by_id[i] for i in ids]

    def get(self, task_id: str) -> Task:
        row = self.db.one(f"SELECT {_COLUMNS} FROM tasks t WHERE t.id = %s", (task_id,))
        if row is None:
            raise TaskNotFoundError(task_id)
        return row_to_task(row)

    def list_tasks(self, *, states: Iterable[TaskState] | None = None, limit: int = 100,
                   parent_id: str | None = None) -> list[Task]:
        """Tasks, most important and newest first, optionally only in ``states`` or under a parent."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if states is not None:
            where.append("t.state = ANY(%s)")
            params.append(list(states))
        if parent_id is not None:
            where.append("t.parent_id = %s")
            params.append(parent_id)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM tasks t WHERE {' AND '.join(where)} ORDER BY t.priority DESC, t.seq DESC LIMIT %s",
            (*params, limit),
        )
        return [row_to_task(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state (all states present, zero included)."""
        found = {r["state"]: r["n"] for r in self.db.query("SELECT state, count(*) AS n FROM tasks GROUP BY state")}
        return {s: int(found.get(s, 0)) for s in machine.STATES}

    def events(self, task_id: str) -> list[TaskEvent]:
        rows = self.db.query("SELECT id, task_id, from_state, to_state, actor, reason, at, data FROM task_events "
                             "WHERE task_id = %s ORDER BY id", (task_id,))
        if not rows:
            self.get(task_id)  # raises TaskNotFoundError
        return [TaskEvent(**{**r, "data": json.loads(r["data"]) if r["data"] else None}) for r in rows]

    def has_ready(self) -> bool:
        """Whether a generic worker could claim a task now (the condition of `claim` without the skills)."""
        return self.db.one("SELECT 1 FROM tasks WHERE state IN ('posted','retry_wait') AND waiting_on = 0 "
                           "AND not_before <= %s AND assignee IS NULL LIMIT 1", (self.clock(),)) is not None

    def wait_for_work(self, timeout: float) -> bool:
        """Sleep until a task may be claimable (a NOTIFY, or a backoff running out) or ``timeout`` passes.

        Returns True when woken early. Spurious wake-ups are harmless: the caller claims, finds
        nothing, and waits again.
        """
        soonest = self.db.scalar("SELECT min(not_before) FROM tasks WHERE state = 'retry_wait' AND waiting_on = 0")
        if soonest is not None:
            timeout = min(timeout, max(0.0, float(soonest) - self.clock()))
        return self.db.wait_notify(CHANNEL, timeout)

    # -- dependencies ------------------------------------------------------------------------
    def add_dependency(self, task_id: str, depends_on: str) -> Task:
        """Make ``task_id`` wait for ``depends_on``; refused when it would close a cycle."""
        with self.db.tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DEPS_LOCK,))
            row = conn.execute("SELECT state FROM tasks WHERE id = %s FOR UPDATE", (task_id,)).fetchone()
            if row is None:
                raise TaskNotFoundError(task_id)
            if row["state"] not in ("posted", "bidding", "retry_wait"):
                raise TaskError(f"Task {task_id} is {row['state']}; dependencies can only be added before it starts.")
            self._add_dependency(conn, task_id, depends_on)
        return self.get(task_id)

    def _add_dependency(self, conn: PgConnection, task_id: str, dep: str) -> None:
        """Caller holds the dependency lock; see the module docstring."""
        row = conn.execute("SELECT state FROM tasks WHERE id = %s", (dep,)).fetchone()
        if row is None:
            raise TaskNotFoundError(dep)
        path = self._path(conn, dep, task_id)
        if dep == task_id or path:
            raise DependencyCycleError([task_id, *path] if path else [task_id, task_id])
        inserted = conn.execute(
            "INSERT INTO task_deps(task_id, depends_on) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (task_id, dep),
        ).fetchall()
        if inserted and row["state"] != "completed":
            conn.execute("UPDATE tasks SET waiting_on = waiting_on + 1 WHERE id = %s", (task_id,))

    @staticmethod
    def _path(conn: PgConnection, start: str, goal: str) -> list[str]:
        """A dependency path from ``start`` to ``goal`` (both included), or [] when there is none."""
        row = conn.execute(
            """WITH RECURSIVE walk(id, path) AS (
                 SELECT %(start)s::text, ARRAY[%(start)s::text]
                 UNION ALL SELECT d.depends_on, walk.path || d.depends_on
                 FROM task_deps d JOIN walk ON d.task_id = walk.id
                 WHERE NOT d.depends_on = ANY(walk.path)
               ) SELECT path FROM walk WHERE id = %(goal)s LIMIT 1""",
            {"start": start, "goal": goal},
        ).fetchone()
        return list(row["path"]) if row else []

    # -- claiming and leases -----------------------------------------------------------------
    def claim(self, worker: str, ttl_s: float, *, skills: Iterable[str] | None = None) -> Lease | None:
        """Atomically take the best ready task: resumable work first, then priority, the nearest deadline, age.

        As on SQLite the task goes straight to executing (events assigned, executing) in one
        transaction. ``skills`` None accepts any task; otherwise the task's skills must all be in it.
        A task awarded to one agent (``assignee``) is left to `claim_assigned`: a generic worker
        would run it as the wrong agent.
        """
        token = secrets.token_hex(8)
        now = self.clock()
        skill_filter = "" if skills is None else "AND skills <@ %(skills)s::jsonb"
        row = self.db.one(
            f"""WITH next AS (
                   SELECT id FROM tasks
                   WHERE state IN ('posted','retry_wait') AND waiting_on = 0 AND not_before <= %(now)s
                   AND assignee IS NULL {skill_filter}
                   ORDER BY resumable DESC, priority DESC, coalesce(deadline, 1e18), seq
                   LIMIT 1 FOR UPDATE SKIP LOCKED),
                claimed AS (
                   UPDATE tasks t SET prev_state = t.state, state = 'executing', lease_owner = %(worker)s,
                      lease_token = %(token)s, lease_expires = %(expires)s, attempts = t.attempts + 1,
                      updated_at = %(now)s
                   FROM next WHERE t.id = next.id
                   RETURNING t.id, t.prev_state, t.attempts),
                events AS (
                   INSERT INTO task_events(task_id, from_state, to_state, actor, reason, at)
                   SELECT id, prev_state, 'assigned', %(worker)s,
                          'claimed (attempt ' || attempts || ', lease ' || %(ttl)s || 's)', %(now)s FROM claimed
                   UNION ALL
                   SELECT id, 'assigned', 'executing', %(worker)s, 'started', %(now)s FROM claimed)
                SELECT id, prev_state, attempts FROM claimed""",
            {"worker": worker, "token": token, "expires": now + ttl_s, "now": now, "ttl": f"{ttl_s:g}",
             "skills": json.dumps(sorted(set(skills or [])))},
        )
        if row is None:
            return None
        return Lease(task_id=row["id"], token=token, worker=worker, expires=now + ttl_s, attempt=row["attempts"])

    def claim_assigned(self, worker: str, ttl_s: float, *, assignees: Iterable[str] | None = None) -> Lease | None:
        """Atomically take the oldest ready task awarded to an agent (the marketplace's winners).

        The contract of `SqliteTaskStore.claim_assigned`: ready is just awarded (``assigned``
        without a lease) or back in the queue (``retry_wait``/``posted`` past its backoff);
        ``assignees`` narrows the claim to those agents' tasks, by account (the node's active
        ones); the task goes to executing under a lease, through an "assigned" event first when
        it was back in the queue.
        One statement, as `claim`: the row is taken ``FOR UPDATE SKIP LOCKED``, so two workers
        never claim one task and neither waits for the other.
        """
        token = secrets.token_hex(8)
        now = self.clock()
        agent_filter = "" if assignees is None else "AND assignee = ANY(%(assignees)s)"
        row = self.db.one(
            f"""WITH next AS (
                   SELECT id, state FROM tasks
                   WHERE assignee IS NOT NULL AND lease_token IS NULL AND waiting_on = 0
                   AND state IN ('assigned','retry_wait','posted') AND not_before <= %(now)s {agent_filter}
                   ORDER BY priority DESC, seq
                   LIMIT 1 FOR UPDATE SKIP LOCKED),
                claimed AS (
                   UPDATE tasks t SET prev_state = t.state, state = 'executing', lease_owner = %(worker)s,
                      lease_token = %(token)s, lease_expires = %(expires)s, attempts = t.attempts + 1,
                      updated_at = %(now)s
                   FROM next WHERE t.id = next.id
                   RETURNING t.id, next.state AS from_state, t.attempts,
                      '(attempt ' || t.attempts || ', lease ' || %(ttl)s || 's)' AS lease_text),
                events AS (
                   INSERT INTO task_events(task_id, from_state, to_state, actor, reason, at)
                   SELECT id, from_state, 'assigned', %(worker)s, 'claimed ' || lease_text, %(now)s
                   FROM claimed WHERE from_state <> 'assigned'
                   UNION ALL
                   SELECT id, 'assigned', 'executing', %(worker)s, 'started ' || lease_text, %(now)s FROM claimed)
                SELECT id, attempts FROM claimed""",
            {"worker": worker, "token": token, "expires": now + ttl_s, "now": now, "ttl": f"{ttl_s:g}",
             "assignees": sorted(set(assignees or []))},
        )
        if row is None:
            return None
        return Lease(task_id=row["id"], token=token, worker=worker, expires=now + ttl_s, attempt=row["attempts"])

    def check_lease(self, conn: PgConnection, lease: Lease, now: float) -> Row:
        """The task row, locked, if ``lease`` still holds it; otherwise `LeaseLostError` saying why.

        The row lock lasts until the caller's transaction ends, so the check and the write that
        follows cannot be split by the reaper or a cancellation.
        """
        row = conn.execute("SELECT state, lease_token, lease_expires, attempts, max_attempts FROM tasks "
                           "WHERE id = %s FOR UPDATE", (lease.task_id,)).fetchone()
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
            conn.execute("UPDATE tasks SET lease_expires = %s WHERE id = %s", (now + ttl_s, lease.task_id))
        return lease.model_copy(update={"expires": now + ttl_s})

    def complete(self, lease: Lease, result: str = "") -> Task:
        """Finish a task under a live lease; dependents waiting on it become ready (and are announced).

        One statement: lock the row, check the lease and the transition table's from-states, write
        the completion and its event, release the dependents. When nothing was written the locked
        row's values say why, in the same words as `check_lease`.
        """
        now = self.clock()
        row = self.db.one(_COMPLETE, {"id": lease.task_id, "token": lease.token, "now": now,
                                      "result": redact_text(result), "actor": lease.worker,
                                      "from": _COMPLETABLE, "channel": CHANNEL})
        if row is None:
            raise TaskNotFoundError(lease.task_id)
        if not row["done"]:
            if row["lease_token"] != lease.token:
                raise LeaseLostError(lease.task_id, f"the task is {row['state']} under another lease or none")
            if row["lease_expires"] is None or row["lease_expires"] <= now:
                raise LeaseLostError(lease.task_id, "the lease expired before it was renewed")
            machine.check(lease.task_id, row["state"], "completed")
            raise TaskError(f"Task {lease.task_id} could not be completed.")  # unreachable: the checks above
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

    def _give_up_or_retry(self, conn: PgConnection, task_id: str, row: Row, actor: str, error: str,
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

    def reap(self, gone: Callable[[str], bool] | None = None) -> list[tuple[str, TaskState]]:
        """Return tasks whose lease expired to the queue with a backoff, or fail them when out of attempts;
        with ``gone``, also the leases of owners known to be dead (`colony.tasks.owners`).

        Rows another transaction holds (a heartbeat renewing just now) are skipped, not waited
        for: the next pass sees them again if they are still expired. Dead owners are found first
        without a lock (a live worker's heartbeat is never held up by it), then rechecked under it.
        """
        now = self.clock()
        dead: list[str] = []
        if gone is not None:
            owners = self.db.query(
                "SELECT DISTINCT lease_owner FROM tasks WHERE lease_expires > %s AND lease_owner IS NOT NULL", (now,))
            dead = [r["lease_owner"] for r in owners if gone(r["lease_owner"])]
        moved: list[tuple[str, TaskState]] = []
        with self.db.tx() as conn:
            rows = conn.execute(
                "SELECT id, state, attempts, max_attempts, lease_owner, lease_expires FROM tasks "
                "WHERE lease_expires IS NOT NULL AND (lease_expires <= %s OR lease_owner = ANY(%s)) "
                "ORDER BY seq FOR UPDATE SKIP LOCKED", (now, dead),
            ).fetchall()
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
        with self.db.tx() as conn:
            row = conn.execute("SELECT state FROM tasks WHERE id = %s FOR UPDATE", (task_id,)).fetchone()
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
            conn.execute("UPDATE tasks SET used_tokens = used_tokens + %s, used_tool_calls = used_tool_calls + %s, "
                         "resumable = 1 WHERE id = %s", (tokens, tool_calls, lease.task_id))

    def expired_pauses(self) -> list[Row]:
        """Per-task approval pauses nobody answered in time: ``id`` and ``approval_default``."""
        return self.db.query(
            "SELECT id, approval_default FROM tasks WHERE state = 'awaiting_approval' AND lease_token IS NULL "
            "AND awaiting_expires IS NOT NULL AND awaiting_expires <= %s ORDER BY seq", (self.clock(),))

    # -- checkpoints and plans, written under the lease -------------------------------------
    def save_checkpoint(self, lease: Lease, step: str, kind: str, body: bytes) -> bool:
        """Record a finished step's packed body; False when the step was already recorded."""
        now = self.clock()
        with self.db.tx() as conn:
            self.check_lease(conn, lease, now)
            rows = conn.execute(
                "INSERT INTO task_checkpoints(task_id, step, kind, attempt, body, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (task_id, step) DO NOTHING RETURNING id",
                (lease.task_id, step, kind, lease.attempt, body, now),
            ).fetchall()
            conn.execute("UPDATE tasks SET resumable = 1 WHERE id = %s AND resumable = 0", (lease.task_id,))
        return bool(rows)

    def checkpoint_rows(self, task_id: str) -> list[Row]:
        """A task's checkpoints as stored (packed bodies), in the order they were written."""
        rows = self.db.query("SELECT step, kind, attempt, body, created_at FROM task_checkpoints "
                             "WHERE task_id = %s ORDER BY id", (task_id,))
        return [{**r, "body": bytes(r["body"])} for r in rows]

    def compact_checkpoints(self, older_than: float, summarize: Callable[[list[Row]], bytes]) -> tuple[int, int, int, int]:
        """Replace the checkpoints of tasks finished before ``older_than`` by one summary row each.

        Returns (tasks, rows removed, payload bytes before, payload bytes after).
        """
        tasks = [r["id"] for r in self.db.query(
            "SELECT DISTINCT c.task_id AS id FROM task_checkpoints c JOIN tasks t ON t.id = c.task_id "
            "WHERE t.state IN ('completed','failed','cancelled') AND t.updated_at < %s AND c.kind != 'summary'",
            (older_than,))]
        removed = before = after = 0
        for task_id in tasks:
            with self.db.tx() as conn:
                rows = [{**r, "body": bytes(r["body"])} for r in conn.execute(
                    "SELECT kind, attempt, body FROM task_checkpoints WHERE task_id = %s ORDER BY id FOR UPDATE",
                    (task_id,)).fetchall()]
                before += sum(len(r["body"]) for r in rows)
                blob = summarize(rows)
                after += len(blob)
                conn.execute("DELETE FROM task_checkpoints WHERE task_id = %s", (task_id,))
                conn.execute("INSERT INTO task_checkpoints(task_id, step, kind, attempt, body, created_at) "
                             "VALUES (%s, 'summary', 'summary', 0, %s, %s)", (task_id, blob, time.time()))
                removed += len(rows)
        return len(tasks), removed, before, after

    def load_plan(self, task_id: str) -> list[PlanStep]:
        rows = self.db.query("SELECT title, depends_on, status, result FROM task_plan_steps WHERE task_id = %s "
                             "ORDER BY idx", (task_id,))
        return [PlanStep(title=r["title"], depends_on=json.loads(r["depends_on"]), status=r["status"],
                         result=r["result"]) for r in rows]

    def set_plan_step(self, lease: Lease, idx: int, status: StepStatus, result: str | None = None) -> None:
        """Update one step under the worker's lease (`LeaseLostError` when the task is no longer ours)."""
        now = self.clock()
        with self.db.tx() as conn:
            self.check_lease(conn, lease, now)
            conn.execute("UPDATE task_plan_steps SET status = %s, result = coalesce(%s, result), updated_at = %s "
                         "WHERE task_id = %s AND idx = %s", (status, result, now, lease.task_id, idx))
            conn.execute("UPDATE tasks SET resumable = 1 WHERE id = %s AND resumable = 0", (lease.task_id,))

    @staticmethod
    def _set(conn: PgConnection, task_id: str, state: TaskState, fields: dict[str, Any], now: float) -> None:
        cols = {"state": state, "updated_at": now, **fields}
        unknown = set(cols) - _WRITABLE
        if unknown:
            raise TaskError(f"Not a writable task field: {', '.join(sorted(unknown))}")
        for key in ("result", "error"):  # free text from the model or a failure: no secret at rest
            if isinstance(cols.get(key), str):
                cols[key] = redact_text(cols[key])
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in cols)
        conn.execute(sql.SQL("UPDATE tasks SET {} WHERE id = {}").format(assignments, sql.Placeholder("_id")),
                     {**cols, "_id": task_id})
