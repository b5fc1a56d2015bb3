"""The task state machine: every legal transition, as a table.

    posted ──► bidding ──► assigned ──► executing ──► completed
       │          │           │   ▲        │  ▲
       │          └──► posted  │   │        ▼  │
       │                      ▼   │   awaiting_approval
       └──────────────► retry_wait ◄───────┘
                          (lease expired or a failure with attempts left)

    any non-final state ──► cancelled · failed ;  failed / cancelled ──► posted (a manual retry)

The table is the single authority: the store checks it before every write and the history
check (`state_from_events`) folds a task's events through it, so a task's current state can
always be re-derived from its append-only events. Bidding exists for the marketplace: a task
may be put up for bids and then assigned to the winner.
"""

from __future__ import annotations

from collections.abc import Iterable

from colony.errors import IllegalTransitionError, TaskError
from colony.tasks.models import TaskEvent, TaskState

__all__ = [
    "LEASED_STATES",
    "QUEUED_STATES",
    "STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "allowed",
    "check",
    "state_from_events",
]

STATES: tuple[TaskState, ...] = (
    "posted", "bidding", "assigned", "executing", "awaiting_approval", "retry_wait",
    "completed", "failed", "cancelled",
)
TERMINAL_STATES: frozenset[TaskState] = frozenset({"completed", "failed", "cancelled"})
#: States a worker may claim from.
QUEUED_STATES: frozenset[TaskState] = frozenset({"posted", "retry_wait"})
#: States in which a worker may hold a lease (a per-task approval pause holds none).
LEASED_STATES: frozenset[TaskState] = frozenset({"assigned", "executing", "awaiting_approval"})

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    "posted": frozenset({"bidding", "assigned", "cancelled", "failed"}),
    "bidding": frozenset({"posted", "assigned", "cancelled", "failed"}),
    "assigned": frozenset({"executing", "awaiting_approval", "retry_wait", "posted", "failed", "cancelled"}),
    "executing": frozenset({"completed", "failed", "cancelled", "awaiting_approval", "retry_wait", "posted"}),
    "awaiting_approval": frozenset({"executing", "posted", "retry_wait", "failed", "cancelled"}),
    "retry_wait": frozenset({"assigned", "posted", "failed", "cancelled"}),
    "failed": frozenset({"posted"}),
    "cancelled": frozenset({"posted"}),
    "completed": frozenset(),
}


def allowed(from_state: TaskState) -> list[TaskState]:
    """The states reachable from ``from_state`` in one step, in table order."""
    return [s for s in STATES if s in TRANSITIONS[from_state]]


def check(task_id: str, from_state: TaskState, to_state: TaskState) -> None:
    """Raise `IllegalTransitionError` unless the table allows the move."""
    if to_state not in TRANSITIONS[from_state]:
        raise IllegalTransitionError(task_id, from_state, to_state, list(allowed(from_state)))


def state_from_events(events: Iterable[TaskEvent]) -> TaskState:
    """Re-derive a task's state from its history, checking that the history is itself legal.

    The first event must create the task (no ``from_state``); each later one must start where the
    previous ended and follow the table.
    """
    state: TaskState | None = None
    for ev in events:
        if state is None:
            if ev.from_state is not None:
                raise TaskError(f"Task {ev.task_id}'s history does not start with its creation (event {ev.id}).")
        else:
            if ev.from_state != state:
                raise TaskError(
                    f"Task {ev.task_id}'s history is broken at event {ev.id}: it moves from {ev.from_state} "
                    f"but the task was {state}."
                )
            check(ev.task_id, state, ev.to_state)
        state = ev.to_state
    if state is None:
        raise TaskError("A task's history is empty: every task is created by an event.")
    return state
