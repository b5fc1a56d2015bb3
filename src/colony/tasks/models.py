"""The task engine's values: what a task is, what happened to it, and what a worker holds.

These are the boundary types of `colony.tasks`: the store returns them, the CLI and the API
print them. Times are Unix seconds (floats) because leases are compared against the clock on
every claim; surfaces format them for people.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, StrictFloat, StrictInt, field_validator

__all__ = [
    "MAX_PLAN_STEPS",
    "MAX_SAFE_INT",
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

#: The largest integer a task field takes: exact in every JSON reader (and in SQLite's int64 and
#: REAL columns alike), so what a client sends is what is stored and read back.
MAX_SAFE_INT = 2**53 - 1
#: Steps in one plan. The bound also lets the schema spell out "depends only on earlier steps".
MAX_PLAN_STEPS = 50
#: Unix seconds up to the year 2242; a deadline past that is a mistake, not a plan.
_MAX_UNIX_S = 2.0**33
#: An approval may wait at most 30 days; less than 10 ms is not a wait a person can answer.
_MIN_APPROVAL_S, _MAX_APPROVAL_S = 0.01, 30 * 86_400.0


def _whole_number(value: Any) -> Any:
    """JSON's integers: ``5`` and ``5.0`` (the same number in JSON), never ``true`` nor ``"5"`` nor ``5.5``."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not true or false")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


# Strict numbers: JSON true/false are not 1/0, and "5" is not 5 — money and limits are never guessed.
# (The bounds come before the validator in each Annotated: that order keeps them in the schema.)
_whole = BeforeValidator(_whole_number)
Count = Annotated[StrictInt, Field(ge=0, le=MAX_SAFE_INT), _whole]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Budget(BaseModel):
    """Limits a task runs under; None means the node's per-turn limits alone apply.

    Credits are micro-credits (integers, never floats; `colony.ledger.amounts`): the default
    reserve when the task is put up for auction (`colony.market`).
    """

    tokens: Annotated[StrictInt, Field(ge=1, le=MAX_SAFE_INT), _whole] | None = None
    tool_calls: Count | None = None
    credits: Count | None = None


class PlanStep(BaseModel):
    """One step of a task's plan. ``depends_on`` holds indexes of earlier steps."""

    title: str = Field(min_length=1, max_length=2000)
    depends_on: list[Annotated[StrictInt, Field(ge=0, le=MAX_PLAN_STEPS - 2), _whole]] = Field(
        default_factory=list, max_length=MAX_PLAN_STEPS - 1)
    status: StepStatus = "pending"
    result: str | None = Field(default=None, max_length=64_000)


def _bare(schema: Any) -> Any:
    """A schema without its titles and descriptions (the plan repeats one per position)."""
    if isinstance(schema, dict):
        return {k: ({name: _bare(sub) for name, sub in v.items()} if k == "properties" else _bare(v))
                for k, v in schema.items() if k not in ("title", "description")}
    if isinstance(schema, list):
        return [_bare(v) for v in schema]
    return schema


def _plan_schema(schema: dict[str, Any]) -> None:
    """The plan as the OpenAPI document states it: step ``i`` may depend on steps ``0..i-1`` only.

    JSON Schema cannot compare an item with its own index, so the rule is spelled out per
    position (``prefixItems``), which the bounded plan length makes finite. Clients and
    generated requests then see the same rule `TaskSpec._deps_point_back` enforces.
    """
    step = _bare(PlanStep.model_json_schema())
    positions = []
    for i in range(MAX_PLAN_STEPS):
        at = {**step, "properties": dict(step["properties"])}
        deps: dict[str, Any] = {"type": "array", "uniqueItems": True, "maxItems": i,
                                "items": {"type": "integer", "minimum": 0, "maximum": max(i - 1, 0)}}
        at["properties"]["depends_on"] = deps
        positions.append(at)
    schema.clear()
    schema.update({"type": "array", "maxItems": MAX_PLAN_STEPS, "prefixItems": positions, "items": False,
                   "description": "Steps in order; step i may depend only on steps 0..i-1."})


#: The characters with the Unicode White_Space property: what ``\s`` means in the schema's patterns.
UNICODE_WHITE_SPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                       "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


class TaskSpec(BaseModel):
    """What a caller asks for when posting a task."""

    goal: str = Field(min_length=1, max_length=64_000, pattern=r"\S")  # not blank, said in the schema too
    priority: Annotated[StrictInt, Field(ge=-1000, le=1000), _whole] = 0
    deadline: Annotated[StrictFloat, Field(ge=0, le=_MAX_UNIX_S)] | None = Field(
        default=None, description="Unix seconds.")
    skills: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=32)
    budget: Budget = Field(default_factory=Budget)
    parent_id: str | None = Field(default=None, min_length=1, max_length=64)
    depends_on: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=100)
    max_attempts: Annotated[StrictInt, Field(ge=1, le=1000), _whole] = 3
    approval: ApprovalMode = "none"
    pause_tools: list[Name] = Field(default_factory=list, max_length=100)
    approval_default: ApprovalDefault = "deny"
    approval_timeout_s: Annotated[StrictFloat, Field(ge=_MIN_APPROVAL_S, le=_MAX_APPROVAL_S)] | None = None
    plan: list[PlanStep] = Field(default_factory=list, max_length=MAX_PLAN_STEPS, json_schema_extra=_plan_schema)

    @field_validator("goal")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Blank as the schema's pattern means it (Unicode White_Space), not as str.strip() does:
        # strip() also eats the C0 separators U+001C-U+001F, so a goal the schema accepts was refused.
        if not value.strip(UNICODE_WHITE_SPACE):
            raise ValueError("a task needs a goal that is not blank")
        return value

    @field_validator("plan")
    @classmethod
    def _deps_point_back(cls, steps: list[PlanStep]) -> list[PlanStep]:
        # Steps may only wait on earlier steps: the order is then always a valid execution order.
        for i, step in enumerate(steps):
            if any(d < 0 or d >= i for d in step.depends_on) or len(set(step.depends_on)) != len(step.depends_on):
                raise ValueError(f"plan step {i} may only depend on earlier steps (0..{i - 1}), each once")
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
    #: The account (64-hex public key) of the hosted agent the task was awarded to (the marketplace);
    #: the node hosting it runs the task as that agent. A name only in rows older than migration 20.
    assignee: str | None = None

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
