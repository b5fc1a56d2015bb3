"""The autonomy loop: reap, pick the best ready task, run it, record the outcome — repeatedly.

`run_once` is one pass (``colony autonomy --once``). `run_daemon` repeats it, sleeping only when
the queue is empty (on PostgreSQL it sleeps in ``LISTEN`` and wakes the moment a task is posted), writes a heartbeat row per worker (``autonomy_workers``: who runs, since
when, last seen, tasks done), runs memory curation and checkpoint compaction on their schedules,
and shuts down gracefully: when asked to stop it finishes the task in hand, then marks itself
stopped. A hard kill loses nothing either — the lease expires, the reaper requeues the task and
the next worker resumes it from its checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from colony.config import Settings
from colony.errors import ColonyError
from colony.llm.model import Model
from colony.node import Node
from colony.observability.logs import get_logger
from colony.store import Database
from colony.store.sessions import pid_alive
from colony.tasks import checkpoints, hitl, owners
from colony.tasks.runner import TaskRun, run_task
from colony.tasks.store import SqliteTaskStore, TaskStore

__all__ = ["WakesWorkers", "open_store", "run_daemon", "run_once", "start_in_process", "worker_name", "workers"]

_log = get_logger("colony.tasks")

#: How often an idle worker waiting for a notification looks at its stop flag.
_STOP_CHECK_S = 0.5


@runtime_checkable
class WakesWorkers(Protocol):
    """A store that can wake idle workers when work arrives (PostgreSQL's LISTEN/NOTIFY)."""

    def wait_for_work(self, timeout: float) -> bool: ...


def open_store(node: Node) -> TaskStore:
    """The node's task queue: on PostgreSQL when ``COLONY_DATABASE_URL`` is set, else in its SQLite file."""
    s = node.settings
    if s.database_url is not None:
        from colony.tasks.pg_store import PgTaskStore  # psycopg is an optional extra

        return PgTaskStore(node.pg, backoff_base_s=s.task_backoff_base_s, backoff_max_s=s.task_backoff_max_s)
    return SqliteTaskStore(node.db, backoff_base_s=s.task_backoff_base_s, backoff_max_s=s.task_backoff_max_s)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def dead_workers(settings: Settings) -> Callable[[str], bool] | None:
    """What the reaper may judge dead besides expired leases (`colony.tasks.owners`), per the settings."""
    return owners.gone if settings.task_reap_dead_local_workers else None


async def run_once(node: Node, *, worker: str | None = None, model: Model | None = None) -> TaskRun | None:
    """Reap expired leases and pauses, then claim and run the best ready task; None when there is none."""
    store = open_store(node)
    store.reap(dead_workers(node.settings))
    hitl.expire_task_pauses(store)
    if not store.has_ready():
        return None
    live = model if model is not None else await node.model()  # before claiming: no model, no claim
    lease = store.claim(worker or worker_name(), node.settings.task_lease_ttl_s)
    if lease is None:
        return None
    return await run_task(node, store, lease, live, ttl_s=node.settings.task_lease_ttl_s)


async def run_daemon(node: Node, stop: asyncio.Event, *, worker: str | None = None, model: Model | None = None,
                     max_tasks: int | None = None) -> int:
    """Work the queue until ``stop`` is set (or ``max_tasks`` ran); return how many tasks ran."""
    name = worker or worker_name()
    db, settings = node.db, node.settings
    now = time.time()
    db.execute(
        "INSERT INTO autonomy_workers(worker, pid, state, started_at, beat_at) VALUES (?, ?, 'running', ?, ?) "
        "ON CONFLICT(worker) DO UPDATE SET pid = excluded.pid, state = 'running', started_at = excluded.started_at, "
        "beat_at = excluded.beat_at, tasks_done = 0, last_error = NULL", (name, os.getpid(), now, now))
    done = 0
    last_curate = last_compact = time.monotonic()
    try:
        while not stop.is_set() and (max_tasks is None or done < max_tasks):
            run: TaskRun | None = None
            error: str | None = None
            try:
                run = await run_once(node, worker=name, model=model)
            except ColonyError as exc:  # no model reachable, database busy: note it and try again later
                error = str(exc)
                _log.warning("autonomy_pass_failed", worker=name, error=error)
            if run is not None:
                done += 1
                _log.info("task_run", worker=name, task_id=run.task_id, outcome=run.outcome)
            db.execute("UPDATE autonomy_workers SET beat_at = ?, tasks_done = ?, last_task = coalesce(?, last_task), "
                       "last_error = ? WHERE worker = ?",
                       (time.time(), done, run.task_id if run else None, error, name))
            if settings.memory_curate_interval_s and time.monotonic() - last_curate >= settings.memory_curate_interval_s:
                last_curate = time.monotonic()
                await _curate(node, name)
            if time.monotonic() - last_compact >= 3600:
                last_compact = time.monotonic()
                checkpoints.compact(open_store(node),
                                    older_than=time.time() - settings.task_checkpoint_retention_days * 86_400)
            if run is None:
                await _idle(node, stop, name, settings.autonomy_interval_s)
    finally:
        db.execute("UPDATE autonomy_workers SET state = 'stopped', beat_at = ? WHERE worker = ?", (time.time(), name))
    return done


async def _idle(node: Node, stop: asyncio.Event, worker: str, interval_s: float) -> None:
    """Wait for work, a stop request or ``interval_s``, whichever comes first.

    A store that announces work (`WakesWorkers`) ends the wait when a task is posted, so an idle
    worker on PostgreSQL reacts in milliseconds without polling; other stores are polled every
    ``interval_s``. The notification wait runs in a thread in short slices so a stop request is
    still seen within `_STOP_CHECK_S`.
    """
    store = open_store(node)
    if isinstance(store, WakesWorkers):
        deadline = time.monotonic() + interval_s
        try:
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if await asyncio.to_thread(store.wait_for_work, min(left, _STOP_CHECK_S)):
                    return
            return
        except ColonyError as exc:  # the server went away: poll instead until it is back
            _log.warning("autonomy_wait_failed", worker=worker, error=str(exc))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), interval_s)


async def _curate(node: Node, worker: str) -> None:
    try:
        report = await asyncio.to_thread(node.memory.curate)
    except ColonyError as exc:  # curation is upkeep: a failure is logged, the loop goes on
        _log.warning("memory_curation_failed", worker=worker, error=str(exc))
        return
    node.db.execute("UPDATE autonomy_workers SET curated_at = ? WHERE worker = ?", (time.time(), worker))
    _log.info("memory_curated", worker=worker, report=report.model_dump(mode="json"))


def workers(node: Node) -> list[dict[str, object]]:
    """The heartbeat rows, newest first (for `colony tasks list` and the web page).

    A row still ``running`` whose process is gone (killed, crashed) is marked ``stopped`` first,
    so a dead worker never shows as running; ``stale`` flags a live one that has not beaten for
    longer than `stale_after_s` (hung, or one long task).
    """
    mark_dead_workers(node.db)
    stale_s = stale_after_s(node.settings.autonomy_interval_s, node.settings.task_lease_ttl_s)
    now = time.time()
    rows = node.db.query("SELECT * FROM autonomy_workers ORDER BY beat_at DESC")
    return [{**row, "stale": row["state"] == "running" and now - float(row["beat_at"]) > stale_s} for row in rows]


def stale_after_s(interval_s: float, lease_ttl_s: float) -> float:
    """How long a running worker may go without a heartbeat before it is flagged stale."""
    return max(3 * interval_s, 2 * lease_ttl_s, 60.0)


def mark_dead_workers(db: Database) -> int:
    """Mark ``running``/``stopping`` rows whose process no longer exists on this host as stopped."""
    rows = db.query("SELECT worker, pid FROM autonomy_workers WHERE state IN ('running', 'stopping')")
    dead = [r["worker"] for r in rows if not pid_alive(int(r["pid"]))]
    for name in dead:
        db.execute("UPDATE autonomy_workers SET state = 'stopped', last_error = ? WHERE worker = ? AND state != 'stopped'",
                   ("the worker process stopped without a goodbye (killed or crashed)", name))
    return len(dead)

    return True


def start_in_process(node: Node, *, grace_s: float = 10.0) -> Callable[[], Awaitable[None]]:
    """Run the daemon as a task of the running event loop (``colony up``); return its stopper.

    The stopper asks the loop to stop, lets the task in hand finish for up to ``grace_s``, then
    cancels it (its lease expires and the task resumes elsewhere from its checkpoints).
    """
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(node, stop), name="colony-autonomy")

    async def shutdown() -> None:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(daemon), grace_s)
        except TimeoutError:
            daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon

    return shutdown
