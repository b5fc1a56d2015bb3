"""Approval tiers: allow, ask, or auto-approve by rule — and the fail-closed wait for a person.

A tool's tier comes from config (`Settings.tier_for`). ``auto`` means "approve when a
deterministic rule says the call is low-risk, otherwise ask". An ``ask`` is sent to the
surface's `Approver` (a CLI prompt, a web card, an editor permission dialog). Timeouts, errors
raised by the surface and malformed answers all mean deny: a broken surface never approves.
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from colony.config import Settings

__all__ = [
    "ApprovalRequest",
    "Approver",
    "Decision",
    "auto_rule_allows",
    "deny_all",
]

Decision = Literal["approved", "denied"]


class ApprovalRequest(BaseModel):
    """What a person is asked to decide. Arguments are already redacted."""

    approval_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    risk: list[str]
    session_id: str | None
    turn_id: str | None
    call_id: str
    timeout_s: float


class Approver(Protocol):
    """A surface's way of asking a person. Must return "approved" or "denied"."""

    def __call__(self, request: ApprovalRequest) -> Awaitable[Decision]: ...


async def deny_all(request: ApprovalRequest) -> Decision:
    """The approver of surfaces with nobody to ask (scripts, `--yes` not given, CI)."""
    return "denied"


def _command_auto_ok(args: dict[str, Any], settings: Settings) -> bool:
    command = args.get("command")
    if not isinstance(command, str):
        return False
    try:
        tokens = shlex.split(command)
    except ValueError:
        return False
    if not tokens:
        return False
    for rule in settings.auto_approve_commands:
        rule_tokens = rule.split()
        if tokens[: len(rule_tokens)] == rule_tokens:
            # A rule approves a program, never a path outside the workspace or a flag that writes.
            rest = tokens[len(rule_tokens):]
            return not any(t.startswith("/") or ".." in t or t in {"-delete", "--output", "-o"} for t in rest)
    return False


#: Per-tool deterministic rules for the ``auto`` tier. A tool without a rule is asked.
AUTO_RULES: dict[str, Callable[[dict[str, Any], Settings], bool]] = {
    "run_command": _command_auto_ok,
}


def auto_rule_allows(tool: str, args: dict[str, Any], settings: Settings, risk: list[str]) -> bool:
    """True when the ``auto`` tier may approve this call without asking."""
    if risk:
        return False
    rule = AUTO_RULES.get(tool)
    return bool(rule and rule(args, settings))
