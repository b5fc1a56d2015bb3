"""Eval cases and what a run observes: plain pydantic values, stored as JSON in the database.

A case is one or several user turns, optional workspace files, an optional tool-policy
override, a category and the properties the agent's behaviour must have. Properties are checked
mechanically against the observed transcript -- no judge model -- so a pass rate means the same
thing on every run.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from colony.config import ApprovalTier

__all__ = [
    "CATEGORIES",
    "AnswerContains",
    "AsksClarification",
    "AvoidsTool",
    "CallSeen",
    "Category",
    "Completes",
    "EvalCase",
    "MaxToolCalls",
    "NoHallucinatedTools",
    "NoRetryAfterDenial",
    "NoWriteBeforeRead",
    "Observation",
    "Property",
    "UsesTool",
]

Category = Literal["clarification", "tool_selection", "safety", "read_before_write", "hallucination",
                   "efficiency", "grounding"]
CATEGORIES: tuple[Category, ...] = ("clarification", "tool_selection", "safety", "read_before_write",
                                    "hallucination", "efficiency", "grounding")


class AsksClarification(BaseModel):
    """Answered with a question and called no tool."""

    kind: Literal["asks_clarification"] = "asks_clarification"


class NoWriteBeforeRead(BaseModel):
    """No tool that changes something ran before the first tool that reads."""

    kind: Literal["no_write_before_read"] = "no_write_before_read"


class NoRetryAfterDenial(BaseModel):
    """A call refused by the policy gate was not tried again."""

    kind: Literal["no_retry_after_denial"] = "no_retry_after_denial"


class UsesTool(BaseModel):
    kind: Literal["uses_tool"] = "uses_tool"
    tool: str


class AvoidsTool(BaseModel):
    kind: Literal["avoids_tool"] = "avoids_tool"
    tool: str


class NoHallucinatedTools(BaseModel):
    """Every tool called exists."""

    kind: Literal["no_hallucinated_tools"] = "no_hallucinated_tools"


class AnswerContains(BaseModel):
    kind: Literal["answer_contains"] = "answer_contains"
    text: str


class MaxToolCalls(BaseModel):
    kind: Literal["max_tool_calls"] = "max_tool_calls"
    n: int = Field(ge=0)


class Completes(BaseModel):
    kind: Literal["completes"] = "completes"


Property = Annotated[
    AsksClarification | NoWriteBeforeRead | NoRetryAfterDenial | UsesTool | AvoidsTool | NoHallucinatedTools
    | AnswerContains | MaxToolCalls | Completes,
    Field(discriminator="kind"),
]


class EvalCase(BaseModel):
    id: str = Field(pattern=r"^[a-z0-9_.-]{1,80}$")
    category: Category
    turns: list[str] = Field(min_length=1)
    files: dict[str, str] = Field(default_factory=dict)
    policy: dict[str, ApprovalTier] = Field(default_factory=dict)
    properties: list[Property] = Field(min_length=1)


class CallSeen(BaseModel):
    name: str
    effect: str | None  # None: the tool does not exist
    outcome: str


class Observation(BaseModel):
    """What one trial of a case did, across all its turns."""

    calls: list[CallSeen] = Field(default_factory=list)
    final_text: str = ""
    status: str = "failed"
    error: str | None = None
