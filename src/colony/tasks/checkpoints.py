"""Per-step checkpoints of a running task, and their compaction once the task is finished.

A checkpoint is written after each step completes (one model response, one tool result, one
plan step) under a key that is deterministic for the run: ``p0/m2`` is the third model request
of plan step 0, ``p0/t1`` its second tool call. A worker that resumes a task re-runs the agent
loop but is *served* every step already checkpointed — no model call, no tool side effect — so
only the step in flight at the crash is done twice. The same rows are the recording that replay
reads.

Bodies are zlib-compressed JSON: the request of a model step repeats the conversation so far,
which compresses well. Writes check the lease in the same transaction, so a worker that lost its
task cannot add to the new owner's history.

Retention: checkpoints of tasks finished longer ago than the retention window are replaced by
one ``summary`` row (what replay can still tell), bounding storage per task.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel

from colony.redaction import redact
from colony.store import Database
from colony.tasks.models import Lease
from colony.tasks.store import SqliteTaskStore, TaskStore

__all__ = [
    "Checkpoint",
    "CheckpointKind",
    "Checkpointer",
    "CompactionReport",
    "compact",
    "load_checkpoints",
    "storage_bytes",
]

CheckpointKind = Literal["model", "tool", "step", "summary"]


class Checkpoint(BaseModel):
    step: str
    kind: CheckpointKind
    attempt: int
    body: dict[str, Any]
    created_at: float


class CompactionReport(BaseModel):
    tasks: int
    rows_removed: int
    bytes_before: int
    bytes_after: int


def _pack(body: dict[str, Any]) -> bytes:
    """Compressed JSON with secrets masked: a tape holds the conversation, never a key in it."""
    return zlib.compress(json.dumps(redact(body), ensure_ascii=False, sort_keys=True).encode(), 6)


def _unpack(blob: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(zlib.decompress(blob))
    return data


class Checkpointer:
    """Writes one task's checkpoints under the worker's lease."""

    def __init__(self, store: TaskStore, lease: Lease) -> None:
        self.store, self.lease = store, lease

    def save(self, step: str, kind: CheckpointKind, body: dict[str, Any]) -> bool:
        """Record a finished step; False when it was already recorded (a resumed run re-served it).

        Raises `LeaseLostError` when the lease is gone: the step's work must not count.
        """
        return self.store.save_checkpoint(self.lease, step, kind, _pack(body))

    def load(self) -> dict[str, Checkpoint]:
        return {c.step: c for c in load_checkpoints(self.store, self.lease.task_id)}


def _as_store(source: Database | TaskStore) -> TaskStore:
    """A node's SQLite database is read through its task store; any other store is used as it is."""
    return SqliteTaskStore(source) if isinstance(source, Database) else source


def load_checkpoints(source: Database | TaskStore, task_id: str) -> list[Checkpoint]:
    """A task's checkpoints in the order they were written."""
    rows = _as_store(source).checkpoint_rows(task_id)
    return [Checkpoint(step=r["step"], kind=r["kind"], attempt=r["attempt"], body=_unpack(r["body"]),
                       created_at=r["created_at"]) for r in rows]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = Counter(r["kind"] for r in rows)
    tools: list[str] = []
    for r in rows:
        if r["kind"] == "tool":
            body = _unpack(r["body"])
            tools.append(f"{body.get('call', {}).get('name', '?')} → {body.get('result', {}).get('outcome', '?')}")
    return {"steps": len(rows), "kinds": dict(kinds), "tools": tools[:200],
            "attempts": sorted({int(r["attempt"]) for r in rows}),
            "note": "compacted: replay needs the full checkpoints, which were past retention"}


def compact(source: Database | TaskStore, *, older_than: float) -> CompactionReport:
    """Summarize the checkpoints of tasks that finished before ``older_than`` (Unix seconds)."""
    tasks, removed, before, after = _as_store(source).compact_checkpoints(
        older_than, lambda rows: _pack(_summary(rows)))
    return CompactionReport(tasks=tasks, rows_removed=removed, bytes_before=before, bytes_after=after)


def storage_bytes(db: Database) -> dict[str, int]:
    """Bytes on disk of each task table with its indexes (SQLite's dbstat), for the storage report."""
    tables = ("tasks", "task_events", "task_checkpoints", "task_deps", "task_plan_steps")
    rows = db.query("SELECT s.tbl_name AS owner, sum(d.pgsize) AS bytes FROM dbstat d "
                    "JOIN sqlite_schema s ON s.name = d.name GROUP BY s.tbl_name")  # each index counts for its table
    sizes = {r["owner"]: int(r["bytes"]) for r in rows}
    return {table: sizes.get(table, 0) for table in tables}
