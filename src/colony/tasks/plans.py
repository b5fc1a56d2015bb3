"""Plans: a task's ordered steps, persisted and updated as the task executes.

A step may wait on earlier steps. Step status is itself a checkpoint: a resumed task skips the
steps already ``done`` and re-enters the one ``in_progress`` (whose model and tool steps are on
the tape). The claim prefers tasks with progress (``resumable``) over new work, so a plan that
was interrupted is finished before anything new starts.
"""

from __future__ import annotations

import json

from colony.store import Database
from colony.tasks.models import Lease, PlanStep, StepStatus
from colony.tasks.store import SqliteTaskStore

__all__ = ["load_plan", "next_step", "set_step", "step_prompt"]


def load_plan(db: Database, task_id: str) -> list[PlanStep]:
    rows = db.query("SELECT title, depends_on, status, result FROM task_plan_steps WHERE task_id = ? ORDER BY idx",
                    (task_id,))
    return [PlanStep(title=r["title"], depends_on=json.loads(r["depends_on"]), status=r["status"], result=r["result"])
            for r in rows]


def next_step(steps: list[PlanStep]) -> int | None:
    """The step to work on: one in progress first, else the first pending step whose dependencies are done."""
    for i, s in enumerate(steps):
        if s.status == "in_progress":
            return i
    for i, s in enumerate(steps):
        if s.status == "pending" and all(steps[d].status == "done" for d in s.depends_on):
            return i
    return None


def set_step(store: SqliteTaskStore, lease: Lease, idx: int, status: StepStatus, result: str | None = None) -> None:
    """Update one step under the worker's lease (`LeaseLostError` when the task is no longer ours)."""
    with store.db.tx() as conn:
        store.check_lease(conn, lease, store.clock())
        conn.execute("UPDATE task_plan_steps SET status = ?, result = coalesce(?, result), updated_at = ? "
                     "WHERE task_id = ? AND idx = ?", (status, result, store.clock(), lease.task_id, idx))
        conn.execute("UPDATE tasks SET resumable = 1 WHERE id = ? AND resumable = 0", (lease.task_id,))


def step_prompt(goal: str, steps: list[PlanStep], idx: int) -> str:
    """What the agent is asked for one step: the goal, the plan, earlier results and this step.

    Steps run in order (dependencies only point back), so when step ``idx`` starts exactly the
    steps before it are done. The prompt is built from that fact, not from the live statuses, so
    a resumed or replayed step is asked the very same question.
    """
    lines = [f"Overall task: {goal}", "", "Plan:"]
    for i, s in enumerate(steps):
        lines.append(f"[{'x' if i < idx else '>' if i == idx else ' '}] {i + 1}. {s.title}")
        if i < idx and s.result:
            lines.append(f"    result: {s.result[:300]}")
    lines += ["", f"Do step {idx + 1} now: {steps[idx].title}"]
    return "\n".join(lines)
