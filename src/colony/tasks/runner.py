"""Running one claimed task through the agent loop, durably.

The worker holds a lease and renews it from a heartbeat task while the agent works (and, through
`hold_lease`, while it prepares the run after its claim); a renewal the database could not make
is retried, only a lease the store says is gone (or one past its expiry) stops the work. Each agent
turn runs with a `TapeModel` and a `TapeExecutor` over the task's checkpoints, so a task that a
crash interrupted resumes from its last checkpoint. The task's budget bounds the run: tool calls
through the agent's per-turn limit, tokens through a check before every live model request.

The outcome is written back under the lease: completed, or failed (to retry_wait while attempts
remain). A lease lost mid-run (expired, cancelled, reaped) stops the run and writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from colony.agent.events import TurnFinished
from colony.agent.loop import RunDeps, run_turn_collect
from colony.config import ApprovalTier, Settings
from colony.errors import LeaseLostError, StoreError, TaskBudgetExceededError
from colony.llm.messages import ModelResponse
from colony.llm.model import Model
from colony.node import Node
from colony.observability.logs import get_logger
from colony.tasks import hitl, plans
from colony.tasks.checkpoints import Checkpointer
from colony.tasks.context_tape import tape_agent
from colony.tasks.models import Lease, Task
from colony.tasks.recording import TapeExecutor, TapeModel
from colony.tasks.store import TaskStore
from colony.tools.middleware import AgentTiers, ToolResult

__all__ = ["RunOutcome", "TaskRun", "governed_tiers", "hold_lease", "run_task", "task_settings"]

RunOutcome = Literal["completed", "failed", "retry", "paused", "lost"]
T = TypeVar("T")
_log = get_logger("colony.tasks")


class TaskRun(BaseModel):
    """What one worker did with one claimed task."""

    task_id: str
    outcome: RunOutcome
    detail: str = ""
    served_steps: int = 0
    live_steps: int = 0


@dataclasses.dataclass
class _Counters:
    served: int = 0
    live: int = 0
    tokens: int = 0
    tool_calls: int = 0


async def run_task(node: Node, store: TaskStore, lease: Lease, model: Model, *, ttl_s: float,
                   agent: str | None = None) -> TaskRun:
    """Run a claimed task to its outcome, heartbeating the lease the whole time.

    ``agent`` is the node's agent (by its local name) the task runs as — the market worker's
    winner, whose account is the task's assignee; None runs it as the node's default agent.
    """
    task = store.get(lease.task_id)
    if task.approval == "task" and not task.approved:
        hitl.pause_for_task(store, lease, task.approval_timeout_s or node.settings.approval_timeout_s)
        return TaskRun(task_id=task.id, outcome="paused", detail="waiting for a person to approve the task")
    counters = _Counters()
    work = asyncio.ensure_future(_work(node, store, lease, model, task, counters, agent))
    beat = asyncio.ensure_future(_heartbeat(store, _Held(lease), ttl_s, work))
    try:
        try:
            text = await work
        except asyncio.CancelledError:
            if beat.done() or store.get(task.id).state in ("cancelled", "failed"):
                return _run(task, "lost", "the lease was lost while working (cancelled, failed or expired)", counters)
            raise
        except LeaseLostError as exc:
            return _run(task, "lost", str(exc), counters)
        except _TurnFailed as exc:
            return _fail(store, lease, task, exc, counters)
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    try:
        store.complete(lease, text)
    except LeaseLostError as exc:
        return _run(task, "lost", str(exc), counters)
    return _run(task, "completed", text[:200], counters)


def task_settings(settings: Settings, task: Task) -> Settings:
    """The node's settings with the task's pause points: its ``pause_tools`` always ask a person.

    The executor's own approval timeout is pushed past the task's, so the task's default
    (deny or fail) is what decides a silence, not the generic expiry.
    """
    timeout = task.approval_timeout_s or settings.approval_timeout_s
    policy: dict[str, ApprovalTier] = {**settings.tool_policy, **{name: "ask" for name in task.pause_tools}}
    return settings.model_copy(update={"tool_policy": policy, "approval_timeout_s": timeout + 30})


def governed_tiers(tiers: AgentTiers | None, task: Task) -> AgentTiers | None:
    """The node's per-agent tiers (set by governance) for a task's calls, except its pause points.

    A task's ``pause_tools`` always ask a person, whatever tier governance gave the agent running
    it: the poster asked for that pause. Every other tool gets the agent's own tier, as in a chat
    turn, so a tier a proposal changed shows in the agent's next task too.
    """
    if tiers is None:
        return None
    paused = frozenset(task.pause_tools)

    def tier(agent: str, tool: str) -> ApprovalTier | None:
        return None if tool in paused else tiers(agent, tool)

    return tier


class _TurnFailed(Exception):
    def __init__(self, finished: TurnFinished) -> None:
        self.finished = finished
        super().__init__(finished.error or finished.status)


def _run(task: Task, outcome: RunOutcome, detail: str, c: _Counters) -> TaskRun:
    return TaskRun(task_id=task.id, outcome=outcome, detail=detail, served_steps=c.served, live_steps=c.live)


def _fail(store: TaskStore, lease: Lease, task: Task, exc: _TurnFailed, c: _Counters) -> TaskRun:
    code = exc.finished.error_code or "failed"
    if code == "lease_lost":
        return _run(task, "lost", str(exc), c)
    if code == "cancelled" and store.get(task.id).state in ("cancelled", "failed"):
        return _run(task, "lost", "the task was stopped while it ran", c)
    try:
        after = store.fail(lease, f"{code}: {exc}", retry=code != "budget_exhausted")
    except LeaseLostError as lost:
        return _run(task, "lost", str(lost), c)
    return _run(task, "retry" if after.state == "retry_wait" else "failed", str(exc), c)


async def hold_lease(store: TaskStore, lease: Lease, ttl_s: float, work: Awaitable[T]) -> tuple[T, Lease]:
    """Await ``work`` while heartbeating ``lease``: for what a worker does between a claim and `run_task`.

    Why: the lease is only renewed while something heartbeats it, and a claim's TTL starts at
    the claim — a slow first step after it (building the model cascade, which may probe
    endpoints) would otherwise let the lease expire before the run begins. Returns what ``work``
    returned and the lease as last renewed (pass that one on); raises `LeaseLostError` when the
    lease is lost meanwhile (``work`` is cancelled then).
    """
    held = _Held(lease)
    job = asyncio.ensure_future(work)
    beat = asyncio.ensure_future(_heartbeat(store, held, ttl_s, job))
    try:
        return await job, held.lease
    except asyncio.CancelledError:
        if beat.done() and not beat.cancelled():
            raise LeaseLostError(lease.task_id, "the lease was lost before the run began") from None
        raise
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


@dataclasses.dataclass
class _Held:
    """The lease as last renewed: its expiry is what a renewal the database refused is judged by."""

    lease: Lease


async def _heartbeat(store: TaskStore, held: _Held, ttl_s: float, work: asyncio.Future[Any]) -> None:
    """Renew the lease at a third of its TTL; stop the work the moment the lease is lost.

    A renewal the store could not make (`StoreError`: the database busy past its timeout, a
    failed commit) does not mean the lease is lost — the row may well still be ours — so it is
    tried again sooner, as long as the lease has not expired by the store's clock. Ending the
    heartbeat there instead would let the lease lapse under a live worker: its task reaped and
    claimed again while it still runs, and its work refused at its next checkpoint.
    """
    delay = ttl_s / 3
    while not work.done():
        await asyncio.sleep(delay)
        lease = held.lease
        try:
            held.lease = store.heartbeat(lease, ttl_s)
        except LeaseLostError:
            work.cancel()
            return
        except StoreError as exc:
            if store.clock() >= lease.expires:  # no renewal in time: another worker may claim it now
                _log.warning("task_lease_unrenewed", task_id=lease.task_id, error=str(exc))
                work.cancel()
                return
            _log.warning("task_heartbeat_retry", task_id=lease.task_id, error=str(exc))
            delay = ttl_s / 10
        else:
            delay = ttl_s / 3


async def _work(node: Node, store: TaskStore, lease: Lease, model: Model, task: Task, c: _Counters,
                agent: str | None) -> str:
    steps = plans.load_plan(store, task.id)
    if not steps:
        return await _turn(node, store, lease, model, task, task.goal, "", c, agent)
    text = ""
    while (idx := plans.next_step(steps)) is not None:
        prompt = plans.step_prompt(task.goal, steps, idx)
        if steps[idx].status != "in_progress":
            plans.set_step(store, lease, idx, "in_progress")
        try:
            text = await _turn(node, store, lease, model, task, prompt, f"p{idx}/", c, agent)
        except _TurnFailed as exc:
            plans.set_step(store, lease, idx, "failed", str(exc))
            raise
        plans.set_step(store, lease, idx, "done", text)
        steps = plans.load_plan(store, task.id)
    return text


async def _turn(node: Node, store: TaskStore, lease: Lease, model: Model, task: Task, prompt: str,
                prefix: str, c: _Counters, agent_name: str | None) -> str:
    """One agent turn over the tape; returns the answer or raises `_TurnFailed`."""
    checkpoints = Checkpointer(store, lease)
    tape = checkpoints.load()
    stopper = asyncio.current_task()

    def before_live() -> None:
        if task.budget.tokens is not None and task.used_tokens + c.tokens >= task.budget.tokens:
            raise TaskBudgetExceededError(
                f"Task {task.id} spent {task.used_tokens + c.tokens} of its {task.budget.tokens}-token budget. "
                "Raise the budget (colony tasks add --tokens N) or split the task.")

    def after_live(response: ModelResponse) -> None:
        c.tokens += response.usage.total_tokens
        store.record_usage(lease, tokens=response.usage.total_tokens)

    def on_tool(result: ToolResult) -> None:
        c.tool_calls += 1
        store.record_usage(lease, tool_calls=1)

    def stop() -> None:
        if stopper is not None:
            stopper.cancel()

    timeout = task.approval_timeout_s or node.settings.approval_timeout_s
    settings = task_settings(node.settings, task)
    tape_model = TapeModel(tape, prefix=prefix, live=model, save=checkpoints.save,
                           before_live=before_live, after_live=after_live)
    executor = TapeExecutor(
        node.registry, settings, node.records, tape=tape, prefix=prefix, save=checkpoints.save, on_live_call=on_tool,
        approver=hitl.TaskApprover(store, lease, timeout_s=timeout, default=task.approval_default, on_fail=stop),
        agent_tiers=governed_tiers(node.executor.agent_tiers, task),
    )
    executor.observers.extend(node.executor.observers)  # the node's cognition watches task calls too
    # A task awarded to one of the node's agents runs as that agent: its persona (the model, already
    # narrowed to its tier by whoever claimed the task, is the tape's live model).
    agent = tape_agent(await node.agent(tape_model, name=agent_name), tape, prefix=prefix, save=checkpoints.save,
                       replay=False)
    if task.budget.tool_calls is not None:
        left = max(0, task.budget.tool_calls - task.used_tool_calls - c.tool_calls)
        agent = dataclasses.replace(agent, max_tool_calls=min(agent.max_tool_calls, left))
    deps = RunDeps(records=node.records, executor=executor, workspace=node.workspace, settings=settings)
    try:
        finished, _ = await run_turn_collect(agent, deps, prompt, surface="task")
    finally:
        c.served += tape_model.served + executor.served
        c.live += tape_model.live_calls + executor.live_calls
    if finished.status != "completed":
        raise _TurnFailed(finished)
    return finished.text
