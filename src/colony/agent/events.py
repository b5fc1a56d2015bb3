"""Events a turn yields as it runs. Every surface (CLI, SSE, ACP) consumes this one stream."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from colony.llm.messages import Usage

__all__ = [
    "EVENTS",
    "AgentEvent",
    "ApprovalRequested",
    "Notice",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallRunning",
    "ToolCallStarted",
    "TurnFinished",
    "TurnStarted",
]


class TurnStarted(BaseModel):
    kind: Literal["turn_started"] = "turn_started"
    session_id: str
    turn_id: str
    perception: dict[str, Any]


class TextDelta(BaseModel):
    kind: Literal["text_delta"] = "text_delta"
    text: str


class ToolCallStarted(BaseModel):
    kind: Literal["tool_call_started"] = "tool_call_started"
    call_id: str
    name: str
    arguments: dict[str, Any]


class ToolCallRunning(BaseModel):
    """The call passed every gate (approval included) and the tool itself is running now."""

    kind: Literal["tool_call_running"] = "tool_call_running"
    call_id: str
    name: str


class ApprovalRequested(BaseModel):
    kind: Literal["approval_requested"] = "approval_requested"
    approval_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    risk: list[str]
    timeout_s: float


class ToolCallFinished(BaseModel):
    kind: Literal["tool_call_finished"] = "tool_call_finished"
    call_id: str
    name: str
    outcome: str
    approval: str
    latency_ms: float
    content: str


class Notice(BaseModel):
    """Something the user should know that is not part of the answer (retries, budgets)."""

    kind: Literal["notice"] = "notice"
    message: str


TurnStatus = Literal["completed", "failed", "cancelled"]


class TurnFinished(BaseModel):
    kind: Literal["turn_finished"] = "turn_finished"
    session_id: str
    turn_id: str
    status: TurnStatus
    text: str
    error: str | None = None
    error_code: str | None = None
    usage: Usage = Field(default_factory=Usage)
    tool_calls: int = 0
    model_requests: int = 0


AgentEvent = Annotated[
    TurnStarted | TextDelta | ToolCallStarted | ApprovalRequested | ToolCallRunning | ToolCallFinished | Notice
    | TurnFinished,
    Field(discriminator="kind"),
]
EVENTS: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)
