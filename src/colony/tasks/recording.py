"""Recording, resuming and replaying an agent run through the model and tool seams.

The agent loop is not modified: a run is made durable by wrapping its two sources of
non-determinism. `TapeModel` implements `colony.llm.model.Model` and `TapeExecutor` is a
`ToolExecutor`; both look up each step's key (``p0/m2``, ``p0/t1``) in a *tape* of checkpoints:

- **live** (a worker running a task): steps already on the tape are served from it — that is
  the resume after a crash — and new steps run for real and are checkpointed as they finish;
- **replay** (`colony tasks replay`): every step is served from the tape, nothing runs, and each
  request the loop builds is compared with the recorded one, so a changed prompt, tool schema
  or approval policy shows up as a `Divergence` at the step where the path would change.

Requests are compared as canonical JSON (sorted keys), which is also what the tape stores: a
replay without divergences rebuilt every request byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from colony.config import Settings
from colony.errors import ModelError, ModelNotSupportedError
from colony.llm.messages import (
    MESSAGES,
    Message,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    StreamEvent,
    ToolCall,
    ToolDefinition,
)
from colony.llm.model import Model
from colony.store.records import RecordStore
from colony.tasks.checkpoints import Checkpoint, CheckpointKind
from colony.tools.approval import ApprovalRequest, Approver
from colony.tools.middleware import AgentTiers, ToolExecutor, ToolResult
from colony.tools.registry import ToolContext, ToolRegistry

__all__ = ["Divergence", "DivergenceKind", "SaveStep", "TapeExecutor", "TapeModel", "canonical_request"]

DivergenceKind = Literal["prompt", "tools", "settings", "policy", "tool_missing", "call", "unrecorded", "unused"]
SaveStep = Callable[[str, CheckpointKind, dict[str, Any]], object]


class Divergence(BaseModel):
    """Where a replay would leave the recorded path, and why."""

    step: str
    kind: DivergenceKind
    detail: str


def canonical_request(messages: Sequence[Message], settings: ModelSettings,
                      tools: Sequence[ToolDefinition]) -> dict[str, Any]:
    """The request as plain JSON values: what is stored, and what replay compares."""
    return {
        "messages": MESSAGES.dump_python(list(messages), mode="json"),
        "settings": settings.model_dump(mode="json"),
        "tools": [t.model_dump(mode="json") for t in tools],
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _compare(step: str, recorded: dict[str, Any], now: dict[str, Any]) -> Divergence | None:
    if _dumps(recorded) == _dumps(now):
        return None
    if _dumps(recorded.get("tools")) != _dumps(now["tools"]):
        old = {t["name"]: t for t in recorded.get("tools", [])}
        new = {t["name"]: t for t in now["tools"]}
        changed = sorted(n for n in old.keys() | new.keys() if _dumps(old.get(n)) != _dumps(new.get(n)))
        return Divergence(step=step, kind="tools", detail=f"tool definitions differ: {', '.join(changed)}")
    if _dumps(recorded.get("settings")) != _dumps(now["settings"]):
        return Divergence(step=step, kind="settings",
                          detail=f"model settings {recorded.get('settings')} → {now['settings']}")
    old_msgs, new_msgs = recorded.get("messages", []), now["messages"]
    for i in range(max(len(old_msgs), len(new_msgs))):
        a = old_msgs[i] if i < len(old_msgs) else None
        b = new_msgs[i] if i < len(new_msgs) else None
        if _dumps(a) != _dumps(b):
            kind = (a or b or {}).get("kind", "?")
            return Divergence(step=step, kind="prompt",
                              detail=f"message {i} ({kind}) differs: {_first_difference(_dumps(a), _dumps(b))}")
    return Divergence(step=step, kind="prompt", detail="the request differs")


def _first_difference(a: str, b: str, context: int = 60) -> str:
    """The two texts around where they first differ: what a person needs to see the change."""
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, at - context)
    return f"recorded …{a[start:at + context]!r}… · now …{b[start:at + context]!r}…"


class TapeModel:
    """A `Model` that serves recorded steps and records (or, in replay, refuses) new ones.

    Args:
        tape: checkpoints by step key.
        prefix: the key prefix of this run (``p0/``); model steps are ``{prefix}m{n}``.
        live: the real model; None means replay (nothing may run live).
        save: where new steps are checkpointed (live mode).
        before_live: called before each live request (the budget check raises from here).
        after_live: called with each live response (usage accounting).
    """

    def __init__(self, tape: dict[str, Checkpoint], *, prefix: str, live: Model | None = None,
                 save: SaveStep | None = None, before_live: Callable[[], None] | None = None,
                 after_live: Callable[[ModelResponse], None] | None = None) -> None:
        self.tape, self.prefix, self.live = tape, prefix, live
        self._save, self._before, self._after = save, before_live, after_live
        self.steps = 0
        self.served = 0
        self.live_calls = 0
        self.divergences: list[Divergence] = []
        self.decisions: list[dict[str, Any]] = []
        self._tools_saved: set[str] = set()

    @property
    def name(self) -> str:
        return self.live.name if self.live is not None else "replay"

    def _key(self) -> str:
        return f"{self.prefix}m{self.steps}"

    def _serve(self, request: dict[str, Any]) -> ModelResponse | None:
        rec = self.tape.get(self._key())
        if rec is None:
            if self.live is None:
                self.divergences.append(Divergence(step=self._key(), kind="unrecorded",
                                                   detail="the run asks for a model request the recording lacks"))
                raise ModelError(f"Replay has no recorded model response for step {self._key()}.")
            return None
        if self.live is None:
            found = _compare(self._key(), self._expand(rec.body["request"]), request)
            if found is not None:
                self.divergences.append(found)
        response = ModelResponse.model_validate(rec.body["response"]).model_copy(update={"from_tape": True})
        self._done(response, served=True)
        return response

    def _done(self, response: ModelResponse, *, served: bool) -> None:
        self.steps += 1
        self.served += served
        self.decisions.append(response.model_dump(mode="json", exclude={"from_tape"}))

    def _expand(self, stored: dict[str, Any]) -> dict[str, Any]:
        """A stored request with its tool definitions put back (they are stored once per task)."""
        ref = stored.get("tools_ref")
        if ref is None:
            return stored
        tools = self.tape.get(f"tools/{ref}")
        rest = {k: v for k, v in stored.items() if k != "tools_ref"}
        return {**rest, "tools": tools.body["tools"] if tools is not None else [{"missing": ref}]}

    def _record(self, request: dict[str, Any], response: ModelResponse) -> None:
        if self._save is not None:
            # Tool schemas are the bulk of a request and rarely change within a task: store them
            # once under their hash and refer to them from each model step.
            tools = _dumps(request["tools"])
            ref = hashlib.sha256(tools.encode()).hexdigest()[:16]
            if f"tools/{ref}" not in self.tape and ref not in self._tools_saved:
                self._save(f"tools/{ref}", "step", {"tools": request["tools"]})
                self._tools_saved.add(ref)
            stored = {**{k: v for k, v in request.items() if k != "tools"}, "tools_ref": ref}
            self._save(self._key(), "model", {"request": stored,
                                              "response": response.model_dump(mode="json", exclude={"from_tape"})})
        self.live_calls += 1
        self._done(response, served=False)
        if self._after is not None:
            self._after(response)

    async def request(self, messages: Sequence[Message], settings: ModelSettings,
                      tools: Sequence[ToolDefinition]) -> ModelResponse:
        request = canonical_request(messages, settings, tools)
        served = self._serve(request)
        if served is not None:
            return served
        assert self.live is not None
        if self._before is not None:
            self._before()
        response = await self.live.request(messages, settings, tools)
        self._record(request, response)
        return response

    async def request_stream(self, messages: Sequence[Message], settings: ModelSettings,
                             tools: Sequence[ToolDefinition]) -> AsyncIterator[StreamEvent]:
        request = canonical_request(messages, settings, tools)
        served = self._serve(request)
        if served is not None:
            yield ResponseDone(response=served)
            return
        assert self.live is not None
        if self._before is not None:
            self._before()
        try:
            async for ev in self.live.request_stream(messages, settings, tools):
                if isinstance(ev, ResponseDone):
                    self._record(request, ev.response)
                yield ev
        except ModelNotSupportedError:
            raise  # the loop falls back to `request`; no step was consumed


class TapeExecutor(ToolExecutor):
    """A `ToolExecutor` that serves recorded tool results and, live, checkpoints new ones.

    Live calls go through the full middleware stack of this executor (built for the task's own
    settings and approver, so per-task pause points apply); replay never runs a tool.
    """

    def __init__(self, registry: ToolRegistry, settings: Settings, records: RecordStore, *, tape: dict[str, Checkpoint],
                 prefix: str, approver: Approver, replay: bool = False, save: SaveStep | None = None,
                 on_live_call: Callable[[ToolResult], None] | None = None,
                 agent_tiers: AgentTiers | None = None) -> None:
        super().__init__(registry, settings, records, approver=approver, agent_tiers=agent_tiers)
        self.tape, self.prefix, self.replay = tape, prefix, replay
        self._save, self._on_live = save, on_live_call
        self.steps = 0
        self.served = 0
        self.live_calls = 0
        self.divergences: list[Divergence] = []

    async def call(self, call: ToolCall, ctx: ToolContext, *, risk: list[str] | None = None,
                   emit: Callable[[ApprovalRequest], None] | None = None,
                   on_run: Callable[[], None] | None = None) -> ToolResult:
        key = f"{self.prefix}t{self.steps}"
        self.steps += 1
        rec = self.tape.get(key)
        if rec is not None:
            self.served += 1
            result = ToolResult.model_validate(rec.body["result"])
            if self.replay:
                self._check(key, ToolCall.model_validate(rec.body["call"]), call, result)
            return result
        if self.replay:
            self.divergences.append(Divergence(step=key, kind="unrecorded",
                                               detail=f"{call.name} was called but the recording has no result"))
            return ToolResult(call_id=call.id, name=call.name, outcome="error", approval="n/a", latency_ms=0.0,
                              content="Error (error): not run during replay", error="not run during replay")
        result = await super().call(call, ctx, risk=risk, emit=emit, on_run=on_run)
        if self._save is not None:
            self._save(key, "tool", {"call": call.model_dump(mode="json"), "result": result.model_dump(mode="json")})
        self.live_calls += 1
        if self._on_live is not None:
            self._on_live(result)
        return result

    def _check(self, key: str, recorded: ToolCall, call: ToolCall, result: ToolResult) -> None:
        """Record why this call would go differently today: other arguments, tool gone, policy changed."""
        if _dumps(recorded.model_dump(mode="json")) != _dumps(call.model_dump(mode="json")):
            self.divergences.append(Divergence(step=key, kind="call",
                                               detail=f"recorded {recorded.name}({recorded.arguments}) · now "
                                                      f"{call.name}({call.arguments})"))
        if call.name not in self.registry.names():
            self.divergences.append(Divergence(step=key, kind="tool_missing",
                                               detail=f"{call.name} is no longer a registered tool"))
            return
        tier = self.settings.tier_for(call.name)
        asked = result.approval in ("approved", "denied", "expired")
        if (result.approval == "allow" and tier != "allow") or (asked and tier == "allow"):
            self.divergences.append(Divergence(step=key, kind="policy", detail=(
                f"{call.name} ran with approval '{result.approval}' but its tier is now '{tier}'")))
