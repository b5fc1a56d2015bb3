"""The governance envelope around tool calls: validation, breaker, caps, limits, approvals,
timeouts, postconditions, audit rows and redaction."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from colony.config import Settings
from colony.errors import PostconditionError, ToolError
from colony.llm.messages import ToolCall
from colony.store import Database, open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.tools.approval import ApprovalRequest, Decision
from colony.tools.middleware import ToolExecutor
from colony.tools.registry import ToolContext, ToolRegistry, tool
from colony.tools.workspace import Workspace


class EchoArgs(BaseModel):
    text: str = Field(description="what to echo")
    times: int = Field(default=1, ge=1, le=5)


@tool()
async def echo(ctx: ToolContext, args: EchoArgs) -> str:
    """Echo the text back."""
    return args.text * args.times


class Nothing(BaseModel):
    pass


class Flaky:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = True


flaky_state = Flaky()


@tool()
async def flaky(ctx: ToolContext, args: Nothing) -> str:
    """Fails while told to."""
    flaky_state.calls += 1
    if flaky_state.fail:
        raise ToolError("flaky", "it broke")
    return "fine"


@tool()
async def crashes(ctx: ToolContext, args: Nothing) -> str:
    """Raises a bare exception, like a buggy tool would."""
    raise ZeroDivisionError("division by zero")


class SlowArgs(BaseModel):
    seconds: float


in_flight = {"now": 0, "max": 0}


@tool(effect="read")
async def slow(ctx: ToolContext, args: SlowArgs) -> str:
    """Sleeps."""
    in_flight["now"] += 1
    in_flight["max"] = max(in_flight["max"], in_flight["now"])
    try:
        await asyncio.sleep(args.seconds)
    finally:
        in_flight["now"] -= 1
    return "slept"


class WriteArgs(BaseModel):
    path: str
    content: str


async def _check_written(ctx: ToolContext, args: WriteArgs, result: str) -> None:
    if ctx.workspace.resolve(args.path).read_text() != args.content:
        raise PostconditionError("writer", "file content differs from what was written")


@tool(effect="write", postcondition=_check_written)
async def writer(ctx: ToolContext, args: WriteArgs) -> str:
    """Writes a file (badly when the content says so)."""
    target = ctx.workspace.resolve(args.path)
    target.write_text(args.content.replace("CORRUPT", "corrupt"))
    return "written"


class SecretArgs(BaseModel):
    api_key: str
    note: str


@tool()
async def leaky(ctx: ToolContext, args: SecretArgs) -> str:
    """Returns its secret, which must never reach the model or the audit log."""
    return f"the key is sk-{'a' * 30} and Authorization: Bearer {'b' * 20}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = open_database(tmp_path / "mw.db")
    yield d  # type: ignore[misc]
    d.close()


def make(settings: Settings, db: Database, approver=None, clock=None, **overrides: object) -> ToolExecutor:  # type: ignore[no-untyped-def]
    policy = {name: "allow" for name in ("echo", "flaky", "crashes", "slow", "leaky")}
    policy.update(overrides.pop("tool_policy", {}))  # type: ignore[call-overload]
    s = settings.model_copy(update={**overrides, "tool_policy": policy})
    registry = ToolRegistry([echo, flaky, crashes, slow, writer, leaky])
    kw = {}
    if approver is not None:
        kw["approver"] = approver
    if clock is not None:
        kw["clock"] = clock
    return ToolExecutor(registry, s, SqliteRecordStore(db), **kw)


def ctx(settings: Settings) -> ToolContext:
    return ToolContext(
        workspace=Workspace(settings.workspace), settings=settings, session_id="s1", turn_id="t1"
    )


async def test_valid_call_runs_and_is_audited(settings: Settings, db: Database) -> None:
    ex = make(settings, db)
    r = await ex.call(ToolCall(id="c1", name="echo", arguments={"text": "hi", "times": 2}), ctx(settings))
    assert (r.outcome, r.content, r.approval) == ("ok", "hihi", "allow")
    [row] = SqliteRecordStore(db).list_tool_calls()
    assert row["tool"] == "echo" and row["outcome"] == "ok" and row["call_id"] == "c1"
    assert json.loads(row["arguments"]) == {"text": "hi", "times": 2}
    assert row["session_id"] == "s1" and row["turn_id"] == "t1" and row["latency_ms"] >= 0


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"text": 5}, "text"),
        ({}, "text: Field required"),
        ({"text": "x", "times": 99}, "times"),
        ({"text": "x", "times": "many"}, "times"),
    ],
)
async def test_wrong_arguments_give_a_structured_error_the_model_can_read(
    settings: Settings, db: Database, arguments: dict[str, object], fragment: str
) -> None:
    ex = make(settings, db)
    r = await ex.call(ToolCall(id="c", name="echo", arguments=arguments), ctx(settings))
    assert r.outcome == "invalid_arguments"
    assert fragment in r.content and "Expected schema" in r.content
    assert SqliteRecordStore(db).list_tool_calls()[0]["outcome"] == "invalid_arguments"


async def test_non_json_arguments_are_reported_not_crashed(settings: Settings, db: Database) -> None:
    ex = make(settings, db)
    r = await ex.call(ToolCall(id="c", name="echo", raw_arguments="{text: 'oops'"), ctx(settings))
    assert r.outcome == "invalid_arguments" and "not a JSON object" in r.content


async def test_ten_megabyte_arguments_are_refused_and_audit_row_stays_small(
    settings: Settings, db: Database
) -> None:
    ex = make(settings, db)
    big = "x" * 10_000_000
    r = await ex.call(ToolCall(id="c", name="echo", arguments={"text": big}), ctx(settings))
    assert r.outcome == "invalid_arguments" and "limit" in r.content
    row = SqliteRecordStore(db).list_tool_calls()[0]
    assert len(row["arguments"]) < 5000


async def test_unknown_tool_lists_the_available_ones(settings: Settings, db: Database) -> None:
    ex = make(settings, db)
    r = await ex.call(ToolCall(id="c", name="rm_everything", arguments={}), ctx(settings))
    assert r.outcome == "unknown_tool" and "echo" in r.content


async def test_breaker_opens_after_three_failures_and_half_opens_after_cooldown(
    settings: Settings, db: Database
) -> None:
    clock = Clock()
    ex = make(settings, db, clock=clock, tool_circuit_failures=3, tool_circuit_cooldown_s=60)
    flaky_state.calls, flaky_state.fail = 0, True
    c = ctx(settings)
    outcomes = [(await ex.call(ToolCall(id=f"c{i}", name="flaky"), c)).outcome for i in range(5)]
    assert outcomes == ["error", "error", "error", "unavailable", "unavailable"]
    assert flaky_state.calls == 3  # the open circuit protected the tool
    assert ex.breaker("flaky").state == "open"
    clock.now += 61
    flaky_state.fail = False
    r = await ex.call(ToolCall(id="probe", name="flaky"), c)
    assert r.outcome == "ok" and ex.breaker("flaky").state == "closed"


async def test_a_crashing_tool_is_an_error_result_not_a_crash(settings: Settings, db: Database) -> None:
    ex = make(settings, db)
    r = await ex.call(ToolCall(id="c", name="crashes"), ctx(settings))
    assert r.outcome == "error" and "ZeroDivisionError" in r.content


async def test_concurrency_cap_bounds_calls_in_flight(settings: Settings, db: Database) -> None:
    ex = make(settings, db, tool_max_in_flight=2)
    in_flight["max"] = 0
    c = ctx(settings)
    results = await asyncio.gather(
        *(ex.call(ToolCall(id=f"c{i}", name="slow", arguments={"seconds": 0.05}), c) for i in range(6))
    )
    assert all(r.outcome == "ok" for r in results)
    assert in_flight["max"] == 2


async def test_sliding_window_rate_limit_per_tool(settings: Settings, db: Database) -> None:
    clock = Clock()
    ex = make(settings, db, clock=clock, tool_rate_limit=3, tool_rate_window_s=10)
    c = ctx(settings)
    outs = [
        (await ex.call(ToolCall(id=f"c{i}", name="echo", arguments={"text": "x"}), c)).outcome
        for i in range(4)
    ]
    assert outs == ["ok", "ok", "ok", "unavailable"]
    assert ex.breaker("echo").state == "closed"  # being rate limited is not the tool failing
    clock.now += 10.5
    assert (await ex.call(ToolCall(id="later", name="echo", arguments={"text": "x"}), c)).outcome == "ok"


async def test_timeout_stops_a_slow_tool(settings: Settings, db: Database) -> None:
    ex = make(settings, db, tool_timeout_s=0.1)
    r = await ex.call(ToolCall(id="c", name="slow", arguments={"seconds": 5}), ctx(settings))
    assert r.outcome == "timeout"


def approver_answering(decision: Decision, seen: list[ApprovalRequest]):  # type: ignore[no-untyped-def]
    async def approve(req: ApprovalRequest) -> Decision:
        seen.append(req)
        return decision

    return approve


async def test_ask_tier_approved_runs_and_records_the_decision(settings: Settings, db: Database) -> None:
    seen: list[ApprovalRequest] = []
    ex = make(settings, db, approver=approver_answering("approved", seen), tool_policy={"writer": "ask"})
    r = await ex.call(
        ToolCall(id="w", name="writer", arguments={"path": "a.txt", "content": "hello"}), ctx(settings)
    )
    assert (r.outcome, r.approval) == ("ok", "approved")
    assert (settings.workspace / "a.txt").read_text() == "hello"
    assert seen[0].tool == "writer" and seen[0].call_id == "w"
    [apr] = SqliteRecordStore(db).list_approvals()
    assert apr["status"] == "approved" and apr["id"] == seen[0].approval_id
    assert SqliteRecordStore(db).list_tool_calls()[0]["approval"] == "approved"


async def test_ask_tier_denied_does_not_run(settings: Settings, db: Database) -> None:
    ex = make(settings, db, approver=approver_answering("denied", []), tool_policy={"writer": "ask"})
    r = await ex.call(
        ToolCall(id="w", name="writer", arguments={"path": "a.txt", "content": "x"}), ctx(settings)
    )
    assert r.outcome == "denied" and not (settings.workspace / "a.txt").exists()
    assert SqliteRecordStore(db).list_approvals()[0]["status"] == "denied"
    assert ex.breaker("writer").state == "closed"


async def test_approval_timeout_and_broken_surface_mean_deny(settings: Settings, db: Database) -> None:
    async def never(req: ApprovalRequest) -> Decision:
        await asyncio.sleep(3600)
        return "approved"

    async def broken(req: ApprovalRequest) -> Decision:
        raise ConnectionError("the editor went away")

    async def garbage(req: ApprovalRequest) -> Decision:
        return "sure, why not"  # type: ignore[return-value]

    for approver, status in ((never, "expired"), (broken, "denied"), (garbage, "denied")):
        ex = make(settings, db, approver=approver, tool_policy={"writer": "ask"}, approval_timeout_s=0.1)
        r = await ex.call(
            ToolCall(id="w", name="writer", arguments={"path": "t.txt", "content": "x"}), ctx(settings)
        )
        assert r.outcome == "denied"
        assert SqliteRecordStore(db).list_approvals()[0]["status"] == status
    assert not (settings.workspace / "t.txt").exists()


async def test_default_policy_asks_for_unknown_tools(settings: Settings, db: Database) -> None:
    assert settings.tier_for("some_new_tool") == "ask"
    assert settings.tier_for("read_file") == "allow"


async def test_postcondition_catches_a_write_that_did_not_stick(settings: Settings, db: Database) -> None:
    ex = make(settings, db, tool_policy={"writer": "allow"})
    r = await ex.call(
        ToolCall(id="w", name="writer", arguments={"path": "p.txt", "content": "CORRUPT"}), ctx(settings)
    )
    assert r.outcome == "postcondition_failed"


async def test_secrets_are_redacted_from_audit_and_model_context(settings: Settings, db: Database) -> None:
    ex = make(settings, db)
    r = await ex.call(
        ToolCall(
            id="s", name="leaky", arguments={"api_key": "hunter2-very-secret", "note": "token=abcd1234xyz"}
        ),
        ctx(settings),
    )
    assert r.outcome == "ok"
    assert "sk-aaaa" not in r.content and "bbbbbbbb" not in r.content and "[REDACTED]" in r.content
    row = SqliteRecordStore(db).list_tool_calls()[0]
    assert "hunter2" not in row["arguments"] and "abcd1234xyz" not in row["arguments"]
    assert "sk-aaaa" not in (row["result_preview"] or "")


async def test_injection_shaped_strings_are_stored_verbatim(settings: Settings, db: Database) -> None:
    ex = make(settings, db)
    evil = "'); DROP TABLE tool_calls; -- \u202e\x00 🐝"
    r = await ex.call(ToolCall(id="e", name="echo", arguments={"text": evil}), ctx(settings))
    assert r.content == evil
    assert json.loads(SqliteRecordStore(db).list_tool_calls()[0]["arguments"])["text"] == evil


async def test_cancellation_is_audited_and_propagates(settings: Settings, db: Database) -> None:
    ex = make(settings, db)
    task = asyncio.ensure_future(
        ex.call(ToolCall(id="c", name="slow", arguments={"seconds": 10}), ctx(settings))
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert SqliteRecordStore(db).list_tool_calls()[0]["outcome"] == "cancelled"


async def test_long_tool_output_is_cut_in_the_middle_for_the_model(settings: Settings, db: Database) -> None:
    ex = make(settings, db, tool_output_limit=1000)
    text = "HEAD" + "x" * 50_000 + "TAIL"
    r = await ex.call(ToolCall(id="big", name="echo", arguments={"text": text}), ctx(settings))
    assert r.outcome == "ok" and len(r.content) <= 1000
    assert r.content.startswith("HEAD") and r.content.endswith("TAIL") and "truncated" in r.content


async def test_workspace_escapes_are_their_own_outcome_and_do_not_open_the_breaker(
    settings: Settings, db: Database
) -> None:
    ex = make(settings, db, tool_circuit_failures=3, tool_policy={"writer": "allow"})
    c = ctx(settings)
    escapes = ["../outside.txt", "/etc/passwd", "a/../../x", "bad\x00name"]
    outcomes = [(await ex.call(ToolCall(id=f"e{i}", name="writer", arguments={"path": p, "content": "x"}), c)).outcome
                for i, p in enumerate(escapes)]
    assert outcomes == ["refused_path"] * 4
    assert ex.breaker("writer").state == "closed"
    ok = await ex.call(ToolCall(id="legit", name="writer", arguments={"path": "in.txt", "content": "fine"}), c)
    assert ok.outcome == "ok" and (settings.workspace / "in.txt").read_text() == "fine"
    assert [r["outcome"] for r in reversed(SqliteRecordStore(db).list_tool_calls())] == ["refused_path"] * 4 + ["ok"]


async def test_calls_that_never_reached_the_gate_are_audited_with_approval_na(settings: Settings, db: Database) -> None:
    clock = Clock()
    ex = make(settings, db, clock=clock, tool_circuit_failures=1, tool_rate_limit=1, tool_rate_window_s=60)
    flaky_state.calls, flaky_state.fail = 0, True
    c = ctx(settings)
    assert (await ex.call(ToolCall(id="f1", name="flaky"), c)).outcome == "error"
    refused = await ex.call(ToolCall(id="f2", name="flaky"), c)  # the breaker is open now
    assert (refused.outcome, refused.approval) == ("unavailable", "n/a")
    assert (await ex.call(ToolCall(id="e1", name="echo", arguments={"text": "x"}), c)).approval == "allow"
    limited = await ex.call(ToolCall(id="e2", name="echo", arguments={"text": "x"}), c)
    assert (limited.outcome, limited.approval) == ("unavailable", "n/a")
    task = asyncio.ensure_future(ex.call(ToolCall(id="s", name="slow", arguments={"seconds": 10}), c))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = {r["call_id"]: r["approval"] for r in SqliteRecordStore(db).list_tool_calls()}
    assert rows == {"f1": "allow", "f2": "n/a", "e1": "allow", "e2": "n/a", "s": "allow"}
