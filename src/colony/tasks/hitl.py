"""Human-in-the-loop pauses: a task waits in ``awaiting_approval`` until a person decides.

Two kinds of pause point:

- **per task** (``approval="task"``): before any work, the claiming worker parks the task in
  awaiting_approval *without* a lease; approving puts it back in the queue, denying cancels it;
- **per tool** (``pause_tools`` and every tool whose tier is ``ask``): the worker keeps its lease
  (and keeps heartbeating) while the task waits; the decision lets the call run or refuses it.

The decision comes from `decide` (the CLI and the API call it). Nobody answering is a decision
too: after the timeout the task's ``approval_default`` applies — ``deny`` refuses (the tool, or
the whole task), ``fail`` fails the task. Decisions are transitions guarded by ``expect``, so a
person and the timeout racing each other produce one outcome, never two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from colony.errors import IllegalTransitionError
from colony.tasks.models import Lease, Task, TaskState
from colony.tasks.store import TaskStore
from colony.tools.approval import ApprovalRequest, Decision

__all__ = ["TaskApprover", "decide", "expire_task_pauses", "pause_for_task"]

POLL_S = 0.1


def pause_for_task(store: TaskStore, lease: Lease, timeout_s: float) -> Task:
    """Park a just-claimed task until a person approves it; the lease is given up."""
    now = store.clock()
    return store.transition(
        lease.task_id, "awaiting_approval", actor=lease.worker, reason="the task needs a person's approval to start",
        fields={"lease_owner": None, "lease_token": None, "lease_expires": None, "awaiting": '{"kind": "task"}',
                "awaiting_expires": now + timeout_s, "attempts": max(0, lease.attempt - 1)},
        expect=("executing",),
    )


def decide(store: TaskStore, task_id: str, approved: bool, *, actor: str = "user", reason: str = "") -> Task:
    """Answer a paused task; raises `IllegalTransitionError` when it is not waiting for an answer."""
    task = store.get(task_id)
    if task.state != "awaiting_approval":
        raise IllegalTransitionError(task_id, task.state, "executing", [])
    decision = "approved" if approved else "denied"
    why = reason or f"{decision} by {actor}"
    if (task.awaiting or {}).get("kind") == "task":
        to: TaskState = "posted" if approved else "cancelled"
        return store.transition(task_id, to, actor=actor, reason=why, data={"decision": decision},
                                fields={"approved": int(approved), "awaiting": None, "awaiting_expires": None},
                                expect=("awaiting_approval",))
    return store.transition(task_id, "executing", actor=actor, reason=why, data={"decision": decision},
                            fields={"awaiting": None, "awaiting_expires": None}, expect=("awaiting_approval",))


def expire_task_pauses(store: TaskStore) -> list[tuple[str, TaskState]]:
    """Apply the default to per-task pauses nobody answered in time (tool pauses time out in their worker)."""
    rows = store.expired_pauses()
    moved: list[tuple[str, TaskState]] = []
    for row in rows:
        to: TaskState = "failed" if row["approval_default"] == "fail" else "cancelled"
        try:
            store.transition(row["id"], to, actor="timeout", reason=f"no decision in time; default is {row['approval_default']}",
                             data={"decision": "expired"}, fields={"awaiting": None, "awaiting_expires": None},
                             expect=("awaiting_approval",))
        except IllegalTransitionError:
            continue  # a person answered first
        moved.append((row["id"], to))
    return moved


class TaskApprover:
    """The `Approver` of a running task: pause the task, wait for `decide`, apply the default on timeout.

    Args:
        store: the task store.
        lease: the worker's lease (kept, and heartbeated elsewhere, while the task waits).
        timeout_s: how long a person has.
        default: what silence means, ``deny`` or ``fail``.
        on_fail: called when the task was failed (by default or by someone else) so the run stops.
    """

    def __init__(self, store: TaskStore, lease: Lease, *, timeout_s: float, default: str,
                 on_fail: Callable[[], None]) -> None:
        self.store, self.lease, self.timeout_s, self.default, self.on_fail = store, lease, timeout_s, default, on_fail

    async def __call__(self, request: ApprovalRequest) -> Decision:
        store, tid = self.store, self.lease.task_id
        deadline = store.clock() + self.timeout_s
        store.transition(
            tid, "awaiting_approval", actor=self.lease.worker, reason=f"{request.tool} needs approval: {request.reason}",
            fields={"awaiting": _request_json(request), "awaiting_expires": deadline}, expect=("executing",),
        )
        while True:
            await asyncio.sleep(POLL_S)
            task = store.get(tid)
            if task.state == "executing":
                last = store.events(tid)[-1]
                return "approved" if (last.data or {}).get("decision") == "approved" else "denied"
            if task.state != "awaiting_approval":
                self.on_fail()
                return "denied"
            if store.clock() >= deadline:
                return self._expire(tid)

    def _expire(self, tid: str) -> Decision:
        to: TaskState = "failed" if self.default == "fail" else "executing"
        fields: dict[str, object] = {"awaiting": None, "awaiting_expires": None}
        if to == "failed":
            fields |= {"lease_owner": None, "lease_token": None, "lease_expires": None, "error": "approval timed out"}
        try:
            self.store.transition(tid, to, actor="timeout", reason=f"no decision in time; default is {self.default}",
                                  data={"decision": "expired"}, fields=fields, expect=("awaiting_approval",))
        except IllegalTransitionError:  # answered at the last moment: that answer stands
            last = self.store.events(tid)[-1]
            return "approved" if (last.data or {}).get("decision") == "approved" else "denied"
        if to == "failed":
            self.on_fail()
        return "denied"


def _request_json(request: ApprovalRequest) -> str:
    return request.model_dump_json(include={"tool", "arguments", "reason", "call_id", "approval_id"})
