"""The agent loop (A2): one turn from input to answer, as a stream of events.

    perceive → assemble context → model → tool calls through the middleware → results back
             → … until the model answers in text or a budget is spent

`Agent` is configuration; everything about one run lives in local variables and the
`RunContext`. The loop is short on purpose: budgets, one request, append, run tools, decide.
Each message is persisted as it happens, so a killed process loses nothing before the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from colony.agent import context as ctxmod
from colony.agent.episodes import judge_outcome, judge_sentiment
from colony.agent.events import (
    AgentEvent,
    ApprovalRequested,
    Notice,
    TextDelta,
    ToolCallFinished,
    ToolCallRunning,
    ToolCallStarted,
    TurnFinished,
    TurnStarted,
    TurnStatus,
)
from colony.agent.perception import perceive
from colony.config import Settings
from colony.errors import ColonyError, LeaseLostError, ModelNotSupportedError
from colony.llm.messages import (
    Message,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from colony.llm.messages import TextDelta as ModelTextDelta
from colony.llm.model import Model
from colony.llm.narration import looks_like_narrated_call
from colony.observability.logs import get_logger
from colony.observability.metrics import observe_model_request, observe_turn
from colony.observability.tracing import Span, activate, mark_failed, span, start_span
from colony.store.audit import LlmCallRecord
from colony.store.records import RecordStore
from colony.store.sessions import Episode, TurnEnd
from colony.tools.approval import ApprovalRequest
from colony.tools.middleware import ToolExecutor, ToolResult
from colony.tools.redact import redact
from colony.tools.registry import ToolContext
from colony.tools.workspace import Workspace

__all__ = [
    "Agent",
    "PromptTooLargeError",
    "RunDeps",
    "current_turn",
    "override_model",
    "run_turn",
    "run_turn_collect",
]

#: (session_id, turn_id) of the turn running in this task; read by hooks that record calls.
current_turn: ContextVar[tuple[str, str] | None] = ContextVar("colony_current_turn", default=None)
_model_override: ContextVar[Model | None] = ContextVar("colony_model_override", default=None)

CORRECTIVE_NUDGE = (
    "You described a tool call instead of making it. Call the tool now through the tool-calling "
    "interface, or answer directly if no tool is needed."
)
HISTORY_LOAD_LIMIT = 400


class PromptTooLargeError(ColonyError):
    code = "prompt_too_large"


@contextlib.contextmanager
def override_model(model: Model) -> Iterator[None]:
    """Use ``model`` for every turn started in this context (tests, demos)."""
    token = _model_override.set(model)
    try:
        yield
    finally:
        _model_override.reset(token)


@dataclass(frozen=True)
class Agent:
    """Who the agent is and what it may use. Holds no per-run state."""

    model: Model
    name: str = "colony"
    persona: str = Settings.model_fields["persona"].default
    max_tool_calls: int = 12
    max_model_requests: int = 16
    context_tokens: int = 8192
    max_prompt_chars: int = 200_000
    perception_in_context: bool = True
    model_settings: ModelSettings = field(default_factory=ModelSettings)
    memory: ctxmod.MemoryProvider | None = None
    #: The node's cognitive substrate; None (the default) leaves the loop exactly as without it.
    cognition: ctxmod.CognitionProvider | None = None

    @classmethod
    def from_settings(cls, model: Model, settings: Settings, **kw: Any) -> Agent:
        return cls(
            model=model,
            persona=settings.persona,
            max_tool_calls=settings.max_tool_calls_per_turn,
            max_model_requests=settings.max_model_requests_per_turn,
            context_tokens=settings.context_tokens,
            perception_in_context=settings.perception_in_context,
            model_settings=ModelSettings(
                temperature=settings.temperature, max_tokens=settings.max_completion_tokens
            ),
            **kw,
        )


@dataclass(frozen=True)
class RunDeps:
    """The node services a turn uses; ``records`` is where the turn is written (`Node.records`)."""

    records: RecordStore
    executor: ToolExecutor
    workspace: Workspace
    settings: Settings


async def _request(
    model: Model, messages: list[Message], settings: ModelSettings, tools: list[Any], stream: bool
) -> AsyncIterator[ModelTextDelta | ResponseDone]:
    if stream:
        try:
            async for ev in model.request_stream(messages, settings, tools):
                yield ev
            return
        except ModelNotSupportedError:
            pass
    yield ResponseDone(response=await model.request(messages, settings, tools))


async def _run_tool(
    deps: RunDeps, call: ToolCall, ctx: ToolContext, risk: list[str], turn_span: Span
) -> AsyncIterator[ApprovalRequested | ToolCallRunning | ToolResult]:
    """Run one call, surfacing approval requests while it waits on them and the moment it runs."""
    queue: asyncio.Queue[ApprovalRequest | None] = asyncio.Queue()  # None: the tool started
    with activate(turn_span):  # the task copies the context now: its tool span is the turn's child
        task = asyncio.ensure_future(deps.executor.call(call, ctx, risk=risk, emit=queue.put_nowait,
                                                        on_run=lambda: queue.put_nowait(None)))

    def event(req: ApprovalRequest | None) -> ApprovalRequested | ToolCallRunning:
        if req is None:
            return ToolCallRunning(call_id=call.id, name=call.name)
        return ApprovalRequested(
            approval_id=req.approval_id, call_id=req.call_id, tool=req.tool, arguments=req.arguments,
            reason=req.reason, risk=req.risk, timeout_s=req.timeout_s,
        )

    try:
        while not task.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield event(getter.result())
            else:
                getter.cancel()
        while not queue.empty():  # a fast tool finished before its start was read
            yield event(queue.get_nowait())
        yield task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_turn(
    agent: Agent,
    deps: RunDeps,
    prompt: str,
    *,
    session_id: str | None = None,
    surface: str = "cli",
    stream: bool = True,
) -> AsyncIterator[AgentEvent]:
    """Run one turn and yield its events; the last event is always `TurnFinished`.

    Cancel by cancelling the task that iterates: the turn is recorded as cancelled (with an
    episode) before the cancellation propagates.
    """
    if len(prompt) > agent.max_prompt_chars:
        raise PromptTooLargeError(
            f"The prompt is {len(prompt):,} characters; the limit is {agent.max_prompt_chars:,}. "
            "Put large content in a file in the workspace and ask the agent to read it."
        )
    records = deps.records
    model = _model_override.get() or agent.model
    perception = perceive(prompt)
    if session_id is None or records.get_session(session_id) is None:
        session_id = records.create_session(title=prompt[:80], surface=surface, agent=agent.name)
    history = records.load_messages(session_id, limit=HISTORY_LOAD_LIMIT)
    turn_id = records.start_turn(session_id, prompt, perception.model_dump(mode="json"))
    token = current_turn.set((session_id, turn_id))
    turn_clock = time.perf_counter()
    # Not attached to the context: this generator yields, and may be resumed from another task.
    turn_span = start_span(
        "colony.turn", {"colony.session_id": session_id, "colony.turn_id": turn_id, "colony.surface": surface}
    )
    records.add_message(session_id, turn_id, UserMessage(content=prompt))
    yield TurnStarted(session_id=session_id, turn_id=turn_id, perception=perception.model_dump(mode="json"))

    memories: list[str] = []
    #: A task's lease lost while recall or the substrate checkpointed: not an optional part failing
    #: (answered without) but the run's end, recorded as a failed turn before any model request.
    lost: LeaseLostError | None = None
    if agent.memory is not None:
        try:
            # Off the event loop: a recall reads the store and scans vectors (~10-20 ms at 100K).
            memories = await asyncio.to_thread(agent.memory.recall_for_context, prompt)
        except LeaseLostError as exc:
            lost = exc
        except ColonyError as exc:  # recall failing must not cost the user their turn
            yield Notice(message=f"Memory recall failed, answering without it: {exc}")
    tool_defs = deps.executor.registry.definitions()
    tool_names = [d.name for d in tool_defs]
    cognition_block = ""
    if agent.cognition is not None and lost is None:
        try:
            cognition_block = agent.cognition.begin_turn(
                prompt=prompt, perception=perception, session_id=session_id, turn_id=turn_id, tool_names=tool_names
            )
        except LeaseLostError as exc:
            lost = exc
        except ColonyError as exc:  # like memory: the substrate failing must not cost the turn
            yield Notice(message=f"The cognitive substrate failed, answering without it: {exc}")
    messages: list[Message] = ctxmod.assemble(
        persona=agent.persona, tool_names=tool_names, perception_summary=perception.summary() if agent.perception_in_context else "",
        memories=memories, history=history, prompt=prompt, context_tokens=agent.context_tokens,
        cognition=cognition_block,
    )
    usage = Usage()
    tool_calls = requests = 0
    tool_outcomes: list[str] = []
    calls_made: list[tuple[str, str]] = []
    done_log: list[str] = []
    nudged = False
    status: TurnStatus = "failed"
    interrupted = False
    final_text = ""
    #: Calls of the last assistant message that have no result yet; closed if the turn ends early.
    open_calls: list[ToolCall] = []
    error: str | None = None
    error_code: str | None = None
    try:
        if lost is not None:
            raise lost
        while True:
            if requests >= agent.max_model_requests:
                error, error_code = (
                    f"Stopped after {requests} model requests (the per-turn limit).", "budget_exhausted"
                )
                break
            budget = agent.max_tool_calls if agent.cognition is None else agent.cognition.tool_budget(agent.max_tool_calls)
            offered = tool_defs if tool_calls < budget else []
            started = time.perf_counter()
            response: ModelResponse | None = None
            with span("colony.model_request", {"gen_ai.request.model": model.name}, parent=turn_span,
                      current=False) as model_span:
                async for ev in _request(model, messages, agent.model_settings, offered, stream):
                    if isinstance(ev, ModelTextDelta):
                        yield TextDelta(text=ev.text)
                    else:
                        response = ev.response
                assert response is not None  # _request always ends with ResponseDone
                _annotate_model_span(model_span, response)
            requests += 1
            usage = usage + response.usage
            elapsed_s = time.perf_counter() - started
            if response.from_tape:  # no model was called: say so, and spend no provider's tokens
                records.record_llm_call(LlmCallRecord(
                    session_id=session_id, turn_id=turn_id, provider="replay",
                    model=response.model_name or model.name, prompt_tokens=0, completion_tokens=0,
                    latency_ms=round(elapsed_s * 1000, 3), outcome="replay", error=None,
                ))
            else:
                records.record_llm_call(LlmCallRecord(
                    session_id=session_id, turn_id=turn_id, provider=response.provider or "unknown",
                    model=response.model_name or model.name, prompt_tokens=response.usage.prompt_tokens,
                    completion_tokens=response.usage.completion_tokens,
                    latency_ms=round(elapsed_s * 1000, 3), outcome="ok", error=None,
                ))
                observe_model_request(
                    response.provider or "unknown", response.model_name or model.name, elapsed_s,
                    prompt_tokens=response.usage.prompt_tokens, completion_tokens=response.usage.completion_tokens,
                )
            if agent.cognition is not None:
                agent.cognition.note_request(response.usage.total_tokens)
            reply = response.message
            if response.recovered_tool_calls:
                yield Notice(message=f"Recovered {len(reply.tool_calls)} tool call(s) written as text.")
            if not reply.tool_calls:
                if offered and not nudged and looks_like_narrated_call(reply.content, tool_names):
                    nudged = True
                    yield Notice(message="The model described a tool call instead of making one; asking once more.")
                    messages += [reply, UserMessage(content=CORRECTIVE_NUDGE)]
                    continue
                records.add_message(session_id, turn_id, reply)
                final_text, status = reply.content, "completed"
                break
            records.add_message(session_id, turn_id, reply)
            messages.append(reply)
            open_calls = list(reply.tool_calls)
            batch = agent.cognition.begin_batch(len(reply.tool_calls)) if agent.cognition is not None else None
            batch_start = len(tool_outcomes)
            for call in reply.tool_calls:
                if tool_calls >= budget:
                    result_msg = ToolResultMessage(
                        tool_call_id=call.id, name=call.name, is_error=True,
                        content=f"Not run: the tool budget of {budget} calls for this turn is "
                        "spent. Answer with what you have.",
                    )
                    tool_outcomes.append("budget_exhausted")
                    calls_made.append((call.name, "budget_exhausted"))
                else:
                    tool_calls += 1
                    yield ToolCallStarted(call_id=call.id, name=call.name, arguments=redact(call.arguments))
                    tctx = ToolContext(
                        workspace=deps.workspace, settings=deps.settings, session_id=session_id,
                        turn_id=turn_id, call_id=call.id, memory=agent.memory, agent=agent.name,
                    )
                    result: ToolResult | None = None
                    async for item in _run_tool(deps, call, tctx, perception.risk_indicators, turn_span):
                        if isinstance(item, ToolResult):
                            result = item
                        else:
                            yield item
                    assert result is not None
                    tool_outcomes.append(result.outcome)
                    calls_made.append((call.name, result.outcome))
                    done_log.append(f"{call.name} → {result.outcome}")
                    yield ToolCallFinished(
                        call_id=call.id, name=call.name, outcome=result.outcome, approval=result.approval,
                        latency_ms=round(result.latency_ms, 3), content=result.content[:2000],
                    )
                    result_msg = ToolResultMessage(
                        tool_call_id=call.id, name=call.name, content=result.content, is_error=result.is_error
                    )
                records.add_message(session_id, turn_id, result_msg)
                messages.append(result_msg)
                open_calls.remove(call)
            if batch is not None and agent.cognition is not None:
                rolled_back = agent.cognition.end_batch(batch, tool_outcomes[batch_start:])
                if rolled_back:
                    yield Notice(message=rolled_back)
    except asyncio.CancelledError:
        status, error, error_code = "cancelled", "The turn was cancelled.", "cancelled"
        _close_calls(records, session_id, turn_id, open_calls, "No result: the turn was cancelled before this call finished.")
        _finish(records, agent, session_id, turn_id, prompt, status, final_text, error, usage, tool_calls,
                requests, tool_outcomes, done_log)
        _reset_turn(token)
        raise
    except ColonyError as exc:
        error, error_code = str(exc), exc.code
        _close_calls(records, session_id, turn_id, open_calls, f"No result: the turn failed before this call finished ({error_code}).")
    except Exception as exc:  # the loop records the failure rather than losing the turn
        error, error_code = f"{type(exc).__name__}: {exc}", "internal_error"
        _close_calls(records, session_id, turn_id, open_calls, "No result: the turn failed before this call finished.")
    except GeneratorExit:  # the consumer stopped reading; the row is marked interrupted on next open
        interrupted = True
        _close_calls(records, session_id, turn_id, open_calls,
                     "No result: the turn was interrupted (its client went away) before this call finished.")
        raise
    finally:
        _end_turn(turn_span, turn_clock, "interrupted" if interrupted else status, error_code)
    _finish(records, agent, session_id, turn_id, prompt, status, final_text, error, usage, tool_calls,
            requests, tool_outcomes, done_log)
    if agent.cognition is not None:
        try:
            agent.cognition.end_turn(prompt=prompt, perception=perception, status=status, calls=calls_made,
                                     session_id=session_id, turn_id=turn_id)
        except ColonyError as exc:  # the turn is already recorded; the substrate catches up next turn
            get_logger("colony.agent").warning("cognition_turn_not_recorded", turn_id=turn_id, error=str(exc))
    _reset_turn(token)
    yield TurnFinished(
        session_id=session_id, turn_id=turn_id, status=status, text=final_text,
        error=error, error_code=error_code, usage=usage, tool_calls=tool_calls, model_requests=requests,
    )


def _close_calls(records: RecordStore, session_id: str, turn_id: str, calls: list[ToolCall], note: str) -> None:
    """Give every still-open call a result saying why it has none, so the session stays usable.

    Best effort: the turn is ending abnormally, and a database that cannot be written now is
    repaired when the session is next loaded (`close_tool_calls`).
    """
    for call in list(calls):
        try:
            records.add_message(session_id, turn_id, ToolResultMessage(
                tool_call_id=call.id, name=call.name, content=note, is_error=True))
        except ColonyError:
            return
        calls.remove(call)


def _annotate_model_span(model_span: Span, response: ModelResponse) -> None:
    model_span.set_attributes({
        "colony.provider": response.provider, "gen_ai.response.model": response.model_name,
        "gen_ai.usage.input_tokens": response.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": response.usage.completion_tokens,
    })


def _end_turn(turn_span: Span, started: float, status: str, error_code: str | None) -> None:
    """Turn metrics and the end of the turn's span, whichever way the turn ended."""
    observe_turn(status, time.perf_counter() - started)
    turn_span.set_attribute("colony.status", status)
    if error_code is not None:
        turn_span.set_attribute("colony.error_code", error_code)
    if status not in ("completed", "cancelled"):
        mark_failed(turn_span, error_code or status)
    turn_span.end()


def _reset_turn(token: Token[tuple[str, str] | None]) -> None:
    # A turn may be started in one task and driven to its end in another (the server starts it
    # in the request, then a background task pumps it); the token is only valid in the first.
    try:
        current_turn.reset(token)
    except ValueError:
        current_turn.set(None)


def _finish(
    records: RecordStore, agent: Agent, session_id: str, turn_id: str, prompt: str, status: TurnStatus, final_text: str,
    error: str | None, usage: Usage, tool_calls: int, requests: int, tool_outcomes: list[str],
    done_log: list[str],
) -> None:
    records.finish_turn(turn_id, TurnEnd(
        status=status, final_text=final_text or None, error=error,
        tool_calls=tool_calls, model_requests=requests, prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
    ))
    outcome = judge_outcome(status, tool_outcomes)
    done = done_log or ([f"answered: {final_text[:200]}"] if final_text else [error or "nothing"])
    records.add_episode(
        Episode(
            session_id=session_id, turn_id=turn_id, asked=prompt[:1000], done=done,
            outcome=outcome, sentiment=judge_sentiment(prompt, outcome), tags=[agent.name],
        ),
    )
    if agent.memory is not None and status != "cancelled":
        try:
            agent.memory.record_episode(asked=prompt, done=done, outcome=outcome, session_id=session_id)
        except ColonyError as exc:  # memory is optional: the turn stands, the failure is logged
            get_logger("colony.agent").warning("episode_not_remembered", turn_id=turn_id, error=str(exc))


async def run_turn_collect(
    agent: Agent, deps: RunDeps, prompt: str, **kw: Any
) -> tuple[TurnFinished, list[AgentEvent]]:
    """Run a turn to the end and return its final event and all events (one sync-ish helper)."""
    events: list[AgentEvent] = []
    async for ev in run_turn(agent, deps, prompt, **kw):
        events.append(ev)
    last = events[-1]
    assert isinstance(last, TurnFinished)
    return last, events
