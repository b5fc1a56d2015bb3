"""Plans: a task's ordered steps, persisted and updated as the task executes.

A step may wait on earlier steps. Step status is itself a checkpoint: a resumed task skips the
steps already ``done`` and re-enters the one ``in_progress`` (whose model and tool steps are on
the tape). The claim prefers tasks with progress (``resumable``) over new work, so a plan that
was interrupted is finished before anything new starts.
"""

from __future__ import annotations

from colony.store import Database
from colony.tasks.models import Lease, PlanStep, StepStatus
from colony.tasks.store import SqliteTaskStore, TaskStore

__all__ = ["load_plan", "next_step", "set_step", "step_prompt"]


def load_plan(source: Database | TaskStore, task_id: str) -> list[PlanStep]:
    """A task's plan; ``source`` is a node's SQLite database or any task store."""
    store = SqliteTaskStore(source) if isinstance(source, Database) else source
    return store.load_plan(task_id)


def next_step(steps: list[PlanStep]) -> int | None:
    """The step to work on: one in progress first, else the first pending step whose dependencies are done."""
    for i, s in enumerate(steps):
        if s.status == "in_progress":
            return i
    for i, s in enumerate(steps):
        if s.status == "pending" and all(steps[d].status == "done" for d in s.depends_on):
            return i
    return None


def set_step(store: TaskStore, lease: Lease, idx: int, status: StepStatus, result: str | None = None) -> None:
    """Update one step under the worker's lease (`LeaseLostError` when the task is no longer ours)."""
    store.set_plan_step(lease, idx, status, result)


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
