"""The governance envelope around every tool call (A4).

Each concern is one small wrapper ``Middleware = Callable[[Handler], Handler]``; `ToolExecutor`
composes them in one visible place, outermost first:

    audit → circuit breaker → concurrency cap → rate limit → approval gate → timeout
          → postcondition → execute

Argument validation happens before the stack (a model's bad arguments are not the tool's
failure and must not open its breaker) but is audited like everything else. Every path ends in
a `ToolResult` the model can read; nothing a tool does can crash the loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, cast

from pydantic import BaseModel, ValidationError

from colony.breaker import CircuitBreaker
from colony.config import ApprovalTier, Settings
from colony.errors import (
    ColonyError,
    PostconditionError,
    ToolArgumentsError,
    ToolDeniedError,
    ToolError,
    ToolTimeoutError,
    ToolUnavailableError,
    UnknownToolError,
    WorkspaceError,
)
from colony.llm.messages import ToolCall
from colony.observability.metrics import observe_approval, observe_tool_call
from colony.observability.tracing import mark_failed, span
from colony.ratelimit import SlidingWindow
from colony.store.audit import ApprovalRecord, ApprovalStatus, ToolCallRecord
from colony.store.records import RecordStore
from colony.store.sessions import new_id
from colony.tools.approval import ApprovalRequest, Approver, auto_rule_allows, deny_all
from colony.tools.output import truncate_middle
from colony.tools.redact import redact, redact_text
from colony.tools.registry import Tool, ToolContext, ToolRegistry

__all__ = ["AgentTiers", "CallEnv", "CallObserver", "Handler", "Middleware", "Outcome", "ToolExecutor", "ToolResult"]

Outcome = Literal[
    "ok", "error", "invalid_arguments", "unknown_tool", "denied", "timeout", "unavailable",
    "postcondition_failed", "cancelled", "refused_path",
]
_OUTCOME_BY_ERROR: dict[type[ColonyError], Outcome] = {
    ToolArgumentsError: "invalid_arguments",
    UnknownToolError: "unknown_tool",
    ToolDeniedError: "denied",
    WorkspaceError: "refused_path",
    ToolTimeoutError: "timeout",
    ToolUnavailableError: "unavailable",
    PostconditionError: "postcondition_failed",
}


_EFFECT_VERB = {"read": "read data", "write": "change files", "execute": "run programs", "network": "reach the network"}


class ToolResult(BaseModel):
    call_id: str
    name: str
    content: str
    outcome: Outcome
    approval: str
    latency_ms: float
    error: str | None = None

    @property
    def is_error(self) -> bool:
        return self.outcome != "ok"


@dataclass
class CallEnv:
    """Everything one call carries through the stack."""

    tool: Tool
    call: ToolCall
    args: BaseModel
    ctx: ToolContext
    risk: list[str] = field(default_factory=list)
    emit: Callable[[ApprovalRequest], None] | None = None
    #: What the approval gate decided; ``n/a`` until the call reaches it (a call refused by the
    #: breaker or the rate limit, or cancelled before the gate, was never approved).
    approval: str = "n/a"
    #: Called once the call passed every gate, just before the tool runs.
    on_run: Callable[[], None] | None = None
    #: The timeout layer's deadline; paused while the running tool waits on a person (`ask_person`).
    deadline: asyncio.Timeout | None = None


Handler = Callable[[CallEnv], Awaitable[str]]
Middleware = Callable[[Handler], Handler]
#: An agent's own tier for a tool, decided above the tool layer (governance: `colony.market`):
#: ``(agent, tool) -> tier``, or None when the node's policy applies.
AgentTiers = Callable[[str, str], ApprovalTier | None]


class CallObserver(Protocol):
    """Watches every call (the cognitive substrate): a prediction before, the outcome after.

    It may also tighten the stack -- ask approval for a tool the policy would allow, stretch or
    shorten timeouts -- but never loosen it. With no observers the executor behaves exactly as
    if this seam did not exist.
    """

    def before_call(self, call: ToolCall, ctx: ToolContext, risk: Sequence[str]) -> object: ...

    def after_call(self, token: object, result: ToolResult) -> None: ...

    def requires_approval(self, tool: Tool) -> bool: ...

    def timeout_multiplier(self) -> float: ...


def _outcome_of(exc: BaseException) -> Outcome:
    for cls in type(exc).__mro__:
        if cls in _OUTCOME_BY_ERROR:
            return _OUTCOME_BY_ERROR[cls]
    return "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"


class ToolExecutor:
    """Runs tool calls through the middleware stack; one per node (breakers are shared state).

    ``records`` receives the audit: every call, every approval asked and how it was decided.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        settings: Settings,
        records: RecordStore,
        *,
        approver: Approver = deny_all,
        clock: Callable[[], float] = time.monotonic,
        agent_tiers: AgentTiers | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.records = records
        self.approver = approver
        #: Per-agent tiers that replace the node's policy for that agent's calls (None: none).
        self.agent_tiers = agent_tiers
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._windows: dict[str, SlidingWindow] = {}
        self._slots = asyncio.Semaphore(settings.tool_max_in_flight)
        self.observers: list[CallObserver] = []
        self._handler = self._compose()

    # -- the stack, in one place ----------------------------------------------------------
    def _compose(self) -> Handler:
        handler: Handler = self._execute
        for layer in (self._postcondition, self._timeout, self._approval, self._rate_limit,
                      self._concurrency, self._breaker):
            handler = layer(handler)
        return handler

    def breaker(self, tool: str) -> CircuitBreaker:
        if tool not in self._breakers:
            self._breakers[tool] = CircuitBreaker(
                self.settings.tool_circuit_failures, self.settings.tool_circuit_cooldown_s, self._clock
            )
        return self._breakers[tool]

    def breaker_states(self) -> dict[str, str]:
        """Each used tool's breaker state (``closed``/``half_open``/``open``), read by /metrics."""
        return {name: b.state for name, b in list(self._breakers.items())}

    def _window(self, tool: str) -> SlidingWindow:
        if tool not in self._windows:
            self._windows[tool] = SlidingWindow(
                self.settings.tool_rate_limit, self.settings.tool_rate_window_s, self._clock
            )
        return self._windows[tool]

    def _breaker(self, inner: Handler) -> Handler:
        async def run(env: CallEnv) -> str:
            b = self.breaker(env.tool.name)
            if not b.allow():
                retry = b.snapshot().retry_in_s
                raise ToolUnavailableError(
                    env.tool.name,
                    f"Tool {env.tool.name} is temporarily unavailable (circuit open after repeated "
                    f"failures; retry in {retry:.0f}s). Try a different approach.",
                )
            try:
                out = await inner(env)
            except (ToolDeniedError, ToolUnavailableError, WorkspaceError, ToolArgumentsError,
                    asyncio.CancelledError):
                # Not the tool's fault: refusals, a path outside the workspace and arguments the
                # tool rejects are the caller's doing; cancellations are nobody's. None of them
                # may open the breaker and lock out the next legitimate call.
                raise
            except BaseException:
                b.record_failure()
                raise
            b.record_success()
            return out

        return run

    def _concurrency(self, inner: Handler) -> Handler:
        async def run(env: CallEnv) -> str:
            async with self._slots:
                return await inner(env)

        return run

    def _rate_limit(self, inner: Handler) -> Handler:
        async def run(env: CallEnv) -> str:
            window = self._window(env.tool.name)
            if not window.try_acquire():
                raise ToolUnavailableError(
                    env.tool.name,
                    f"Rate limit for {env.tool.name}: {window.limit} calls per {window.window_s:.0f}s; "
                    f"retry in {window.retry_after():.0f}s.",
                )
            return await inner(env)

        return run

    def tier_for(self, tool: str, agent: str | None) -> ApprovalTier:
        """The calling agent's own tier for ``tool`` when one was set for it, else the node's policy.

        Observers (the cognitive substrate) may still tighten it to ``ask``; nothing loosens it further.
        """
        if agent is not None and self.agent_tiers is not None:
            own = self.agent_tiers(agent, tool)
            if own is not None:
                return own
        return self.settings.tier_for(tool)

    def _approval(self, inner: Handler) -> Handler:
        async def run(env: CallEnv) -> str:
            tier = self.tier_for(env.tool.name, env.ctx.agent)
            if tier != "ask" and any(o.requires_approval(env.tool) for o in self.observers):
                tier = "ask"
            args = env.args.model_dump(mode="json")
            if tier == "allow":
                env.approval = "allow"
            elif tier == "auto" and auto_rule_allows(env.tool.name, args, self.settings, env.risk):
                env.approval = "auto"
            else:
                env.approval = await self._ask(env, args, tier)
                if env.approval != "approved":
                    raise ToolDeniedError(
                        env.tool.name,
                        f"The call to {env.tool.name} was not approved ({env.approval}). Do not retry it; "
                        "explain what you wanted to do or choose a read-only approach.",
                    )
            return await inner(env)

        return run

    async def _ask(self, env: CallEnv, args: dict[str, Any], tier: str, reason: str | None = None) -> str:
        timeout = self.settings.approval_timeout_s
        request = ApprovalRequest(
            approval_id=new_id("apr"),
            tool=env.tool.name,
            arguments=redact(args),
            reason=reason or f"{env.tool.name} is a tool that can {_EFFECT_VERB[env.tool.effect]}; its approval tier is '{tier}'",
            risk=env.risk,
            session_id=env.ctx.session_id,
            turn_id=env.ctx.turn_id,
            call_id=env.call.id,
            timeout_s=timeout,
        )
        self.records.create_approval(ApprovalRecord(
            approval_id=request.approval_id, session_id=request.session_id, turn_id=request.turn_id,
            call_id=request.call_id, tool=request.tool, arguments=request.arguments, reason=request.reason,
            timeout_s=timeout,
        ))
        if env.emit is not None:
            env.emit(request)
        status: ApprovalStatus
        try:
            async with asyncio.timeout(timeout):
                decision = await self.approver(request)
            status = "approved" if decision == "approved" else "denied"
            by = "surface"
        except TimeoutError:
            status, by = "expired", "timeout"
        except asyncio.CancelledError:
            self.records.decide_approval(request.approval_id, "denied", "cancelled")
            observe_approval("cancelled")
            raise
        except Exception:  # a broken surface never approves
            status, by = "denied", "surface_error"
        if not self.records.decide_approval(request.approval_id, status, by):
            # Decided elsewhere first (e.g. the API); the stored decision wins.
            row = self.records.get_approval(request.approval_id)
            status = cast(ApprovalStatus, row["status"]) if row else "denied"
        observe_approval(status)
        return status

    def _timeout(self, inner: Handler) -> Handler:
        async def run(env: CallEnv) -> str:
            # Tools with their own deadline (run_command) get a grace period to clean up first.
            limit = self.settings.tool_timeout_s + (5.0 if env.tool.effect == "execute" else 0.0)
            for o in self.observers:
                limit *= o.timeout_multiplier()
            try:
                async with asyncio.timeout(limit) as env.deadline:
                    return await inner(env)
            except TimeoutError as exc:
                raise ToolTimeoutError(
                    env.tool.name, f"{env.tool.name} did not finish within {limit:.0f}s and was stopped."
                ) from exc

        return run

    def _postcondition(self, inner: Handler) -> Handler:
        async def run(env: CallEnv) -> str:
            out = await inner(env)
            if env.tool.postcondition is not None:
                await env.tool.postcondition(env.ctx, env.args, out)
            return out

        return run

    async def _execute(self, env: CallEnv) -> str:
        if env.on_run is not None:
            env.on_run()
        return await env.tool.fn(replace(env.ctx, ask_person=functools.partial(self._ask_mid_call, env)), env.args)

    async def _ask_mid_call(self, env: CallEnv, reason: str, arguments: dict[str, Any]) -> str:
        """A running tool asks a person (a payment above its threshold): the gate's `_ask`, whose wait
        does not count against the tool's timeout — a person gets ``approval_timeout_s`` to answer."""
        loop = asyncio.get_running_loop()
        deadline = env.deadline
        when = deadline.when() if deadline is not None else None
        if deadline is not None:
            deadline.reschedule(None)
        started = loop.time()
        try:
            return await self._ask(env, arguments, "ask", reason)
        finally:
            if deadline is not None and when is not None:
                deadline.reschedule(when + (loop.time() - started))

    # -- entry point ------------------------------------------------------------------------
    def _validate(self, call: ToolCall) -> tuple[Tool, BaseModel]:
        tool = self.registry.get(call.name)
        if call.raw_arguments is not None and not call.arguments:
            raise ToolArgumentsError(
                tool.name,
                f"The arguments for {tool.name} were not a JSON object: {call.raw_arguments[:200]!r}. "
                f"Send a JSON object matching the schema: {json.dumps(tool.schema)[:600]}",
            )
        size = len(json.dumps(call.arguments, ensure_ascii=False, default=str))
        if size > self.settings.max_tool_argument_bytes:
            raise ToolArgumentsError(
                tool.name,
                f"The arguments for {tool.name} are {size} bytes; the limit is "
                f"{self.settings.max_tool_argument_bytes}. Send less data per call.",
            )
        try:
            return tool, tool.args_model.model_validate(call.arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in exc.errors()[:8]
            )
            raise ToolArgumentsError(
                tool.name,
                f"Invalid arguments for {tool.name}: {problems}. Expected schema: {json.dumps(tool.schema)[:600]}",
                [dict(e) for e in exc.errors(include_url=False, include_input=False)[:8]],
            ) from None

    async def call(
        self,
        call: ToolCall,
        ctx: ToolContext,
        *,
        risk: list[str] | None = None,
        emit: Callable[[ApprovalRequest], None] | None = None,
        on_run: Callable[[], None] | None = None,
    ) -> ToolResult:
        """Run one tool call through the whole stack and audit it. Never raises, except cancellation.

        ``emit`` receives the approval request when the call has to ask; ``on_run`` is called when
        the tool itself starts (after every gate), so surfaces can tell waiting from running.
        """
        attrs = {"colony.tool": call.name, "colony.call_id": call.id, "colony.turn_id": ctx.turn_id}
        with span("colony.tool_call", attrs) as sp:
            result = await self._call(call, ctx, risk, emit, on_run)
            sp.set_attribute("colony.outcome", result.outcome)
            sp.set_attribute("colony.approval", result.approval)
            if result.is_error:
                mark_failed(sp, result.outcome)
        return result

    async def _call(
        self, call: ToolCall, ctx: ToolContext, risk: list[str] | None, emit: Callable[[ApprovalRequest], None] | None,
        on_run: Callable[[], None] | None = None,
    ) -> ToolResult:
        watching = [(o, o.before_call(call, ctx, risk or [])) for o in self.observers]
        start = time.perf_counter()
        approval = "n/a"
        content: str
        error: str | None = None
        outcome: Outcome = "ok"
        try:
            tool, args = self._validate(call)
            env = CallEnv(tool=tool, call=call, args=args, ctx=ctx, risk=list(risk or []), emit=emit, on_run=on_run)
            try:
                content = await self._handler(env)
            finally:
                approval = env.approval
        except asyncio.CancelledError:
            self._audit(call, ctx, "cancelled", "the turn was cancelled", None, start, approval, risk)
            raise
        except ToolError as exc:
            outcome, error = _outcome_of(exc), str(exc)
        except ColonyError as exc:
            outcome, error = "error", str(exc)
        except Exception as exc:  # a tool's own bug must not crash the loop
            outcome, error = "error", f"{call.name} failed: {type(exc).__name__}: {exc}"
        if outcome == "ok":
            content = redact_text(truncate_middle(content, self.settings.tool_output_limit))
        else:
            error = redact_text(error or "")
            content = f"Error ({outcome}): {error}"
        latency = self._audit(call, ctx, outcome, error, content if outcome == "ok" else None, start, approval, risk)
        result = ToolResult(
            call_id=call.id, name=call.name, content=content, outcome=outcome,
            approval=approval, latency_ms=latency, error=error,
        )
        for observer, token in watching:
            observer.after_call(token, result)
        return result

    def _audit(
        self,
        call: ToolCall,
        ctx: ToolContext,
        outcome: str,
        error: str | None,
        preview: str | None,
        start: float,
        approval: str,
        risk: list[str] | None,
    ) -> float:
        latency = (time.perf_counter() - start) * 1000
        observe_tool_call(call.name, outcome)
        self.records.record_tool_call(
            ToolCallRecord(
                session_id=ctx.session_id, turn_id=ctx.turn_id, call_id=call.id, tool=call.name,
                arguments=_shrink(redact(call.arguments if call.raw_arguments is None else call.raw_arguments)),
                outcome=outcome, error=error, result_preview=(preview or "")[:500] or None,
                latency_ms=round(latency, 3), approval=approval, risk=list(risk or []),
            ),
        )
        return latency


def _shrink(value: Any, limit: int = 2000) -> Any:
    """Bound what an audit row stores: long strings keep their head and a length marker."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}…[{len(value)} chars]"
    if isinstance(value, dict):
        return {k: _shrink(v, limit) for k, v in list(value.items())[:100]}
    if isinstance(value, list):
        return [_shrink(v, limit) for v in value[:100]]
    return value
