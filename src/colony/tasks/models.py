"""The task engine's values: what a task is, what happened to it, and what a worker holds.

These are the boundary types of `colony.tasks`: the store returns them, the CLI and the API
print them. Times are Unix seconds (floats) because leases are compared against the clock on
every claim; surfaces format them for people.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "ApprovalDefault",
    "ApprovalMode",
    "Budget",
    "Lease",
    "PlanStep",
    "StepStatus",
    "Task",
    "TaskEvent",
    "TaskSpec",
    "TaskState",
]

TaskState = Literal[
    "posted", "bidding", "assigned", "executing", "awaiting_approval", "retry_wait",
    "completed", "failed", "cancelled",
]
#: ``task``: a person approves the task before any work starts; ``none``: only tool pauses apply.
ApprovalMode = Literal["none", "task"]
#: What an unanswered approval turns into when its timeout passes.
ApprovalDefault = Literal["deny", "fail"]
StepStatus = Literal["pending", "in_progress", "done", "failed"]


class Budget(BaseModel):
    """Limits a task runs under; None means the node's per-turn limits alone apply.

    Credits are recorded for the economy to come; nothing prices work in credits yet.
    """

    tokens: int | None = Field(default=None, ge=1)
    tool_calls: int | None = Field(default=None, ge=0)
    credits: float | None = Field(default=None, ge=0)


class PlanStep(BaseModel):
    """One step of a task's plan. ``depends_on`` holds indexes of earlier steps."""

    title: str = Field(min_length=1, max_length=2000)
    depends_on: list[int] = Field(default_factory=list)
    status: StepStatus = "pending"
    result: str | None = None


class TaskSpec(BaseModel):
    """What a caller asks for when posting a task."""

    goal: str = Field(min_length=1, max_length=64_000)
    priority: int = Field(default=0, ge=-1000, le=1000)
    deadline: float | None = None
    skills: list[str] = Field(default_factory=list)
    budget: Budget = Field(default_factory=Budget)
    parent_id: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    max_attempts: int = Field(default=3, ge=1, le=1000)
    approval: ApprovalMode = "none"
    pause_tools: list[str] = Field(default_factory=list)
    approval_default: ApprovalDefault = "deny"
    approval_timeout_s: float | None = Field(default=None, gt=0)
    plan: list[PlanStep] = Field(default_factory=list)

    @field_validator("goal")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a task needs a goal that is not blank")
        return value

    @field_validator("plan")
    @classmethod
    def _deps_point_back(cls, steps: list[PlanStep]) -> list[PlanStep]:
        # Steps may only wait on earlier steps: the order is then always a valid execution order.
        for i, step in enumerate(steps):
            if any(d < 0 or d >= i for d in step.depends_on):
                raise ValueError(f"plan step {i} may only depend on earlier steps (0..{i - 1})")
        return steps


class Task(BaseModel):
    """A task as stored, with its current state and lease."""

    id: str
    goal: str
    state: TaskState
    priority: int
    deadline: float | None
    skills: list[str]
    budget: Budget
    used_tokens: int
    used_tool_calls: int
    parent_id: str | None
    depends_on: list[str] = Field(default_factory=list)
    waiting_on: int
    attempts: int
    max_attempts: int
    not_before: float
    lease_owner: str | None
    lease_expires: float | None
    approval: ApprovalMode
    approved: bool
    pause_tools: list[str]
    approval_default: ApprovalDefault
    approval_timeout_s: float | None
    awaiting: dict[str, Any] | None
    awaiting_expires: float | None
    result: str | None
    error: str | None
    created_at: float
    updated_at: float

    @property
    def terminal(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")


class TaskEvent(BaseModel):
    """One row of a task's append-only history: who moved it, when, and why."""

    id: int
    task_id: str
    from_state: TaskState | None
    to_state: TaskState
    actor: str
    reason: str
    at: float
    data: dict[str, Any] | None = None


class Lease(BaseModel):
    """A worker's claim on a task: proof of ownership for heartbeats and completion."""

    task_id: str
    token: str
    worker: str
    expires: float
    attempt: int
