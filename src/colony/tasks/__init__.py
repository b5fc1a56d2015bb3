"""Durable tasks (T): a state machine that never loses work, and the autonomy loop that works it.

- `machine`: the states and the transition table; `models`: Task, TaskEvent, Lease, PlanStep.
- `store`: the queue behind the `TaskStore` protocol — post, atomic claim with a lease, heartbeat,
  complete, reap, dependencies — on SQLite (`SqliteTaskStore`).
- `checkpoints`, `recording`, `replay`: per-step checkpoints, resume after a crash, replay.
- `hitl`, `plans`: human approval pauses; plans of ordered steps.
- `runner`, `autonomy`: running a claimed task through the agent loop; the loop and daemon.

May import the node, agent loop, tools, store and llm layers; surfaces (CLI, server) import this.
"""

from __future__ import annotations

from colony.tasks.machine import TERMINAL_STATES, TRANSITIONS, state_from_events
from colony.tasks.models import Budget, Lease, PlanStep, Task, TaskEvent, TaskSpec, TaskState
from colony.tasks.store import SqliteTaskStore, TaskStore

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Budget",
    "Lease",
    "PlanStep",
    "SqliteTaskStore",
    "Task",
    "TaskEvent",
    "TaskSpec",
    "TaskState",
    "TaskStore",
    "state_from_events",
]
