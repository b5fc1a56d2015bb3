"""The audit trail's records: every tool call, every approval decision, every model call.

The SQL lives behind `colony.store.records.RecordStore` (SQLite or PostgreSQL); what a record
holds and how it is kept at rest is here, once for both engines. Callers redact arguments before
they build a record (see `colony.tools.redact`), and `at_rest` masks every free-text value again,
so a raw secret never reaches either database whichever path it came by.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from colony.redaction import redact, redact_text

__all__ = [
    "ApprovalRecord",
    "ApprovalStatus",
    "LlmCallRecord",
    "ToolCallRecord",
    "tool_call_filter",
]

ApprovalStatus = Literal["pending", "approved", "denied", "expired"]


def _masked(text: str | None) -> str | None:
    return None if text is None else redact_text(text)


def _json(value: Any) -> str:
    return json.dumps(redact(value), ensure_ascii=False, default=str)


class ToolCallRecord(BaseModel):
    session_id: str | None
    turn_id: str | None
    call_id: str
    tool: str
    arguments: Any
    outcome: str
    error: str | None = None
    result_preview: str | None = None
    latency_ms: float
    approval: str
    risk: list[str] = []

    def at_rest(self) -> dict[str, Any]:
        """The values as stored: arguments as redacted JSON, the error and the preview masked."""
        return {**self.model_dump(), "arguments": _json(self.arguments), "error": _masked(self.error),
                "result_preview": _masked(self.result_preview), "risk": json.dumps(self.risk)}


class ApprovalRecord(BaseModel):
    """A tool call (or a governance step) waiting for a person, pending until ``timeout_s`` has passed."""

    approval_id: str
    session_id: str | None
    turn_id: str | None
    call_id: str
    tool: str
    arguments: Any
    reason: str
    timeout_s: float

    def at_rest(self) -> dict[str, Any]:
        """The values as stored; the engine turns ``timeout_s`` into ``expires_at`` by its own clock."""
        return {**self.model_dump(), "id": self.approval_id, "arguments": _json(self.arguments),
                "reason": redact_text(self.reason), "timeout_s": float(self.timeout_s)}


class LlmCallRecord(BaseModel):
    """One model request: whose turn, which provider and model, tokens, latency and outcome."""

    session_id: str | None
    turn_id: str | None
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float
    outcome: str
    error: str | None = None

    def at_rest(self) -> dict[str, Any]:
        """The values as stored: the error masked."""
        return {**self.model_dump(), "error": _masked(self.error)}


def tool_call_filter(
    mark: str,
    *,
    session_id: str | None,
    tool: str | None,
    outcome: str | None,
    before_id: int | None,
) -> tuple[str, list[object]]:
    """The ``WHERE`` clause of a tool-call listing and its parameters; ``mark`` is the engine's placeholder.

    Only the fixed column names below become SQL; every value is a parameter.
    """
    where: list[str] = []
    params: list[object] = []
    for column, value in (("session_id", session_id), ("tool", tool), ("outcome", outcome)):
        if value is not None:
            where.append(f"{column} = {mark}")
            params.append(value)
    if before_id is not None:
        where.append(f"id < {mark}")
        params.append(before_id)
    return ("WHERE " + " AND ".join(where)) if where else "", params
