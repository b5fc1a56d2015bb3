"""Observability: Prometheus metrics from real tool calls and turns, JSON logs, OTel spans, HTTP middleware."""

from __future__ import annotations

import asyncio
import gc
import http.server
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from colony import observability as obs
from colony.agent.events import TurnFinished, TurnStarted
from colony.agent.loop import Agent, RunDeps, run_turn, run_turn_collect
from colony.config import ProviderConfig, Settings
from colony.errors import ToolError
from colony.llm.messages import AssistantMessage, Message, ModelSettings, ToolCall, ToolResultMessage
from colony.node import Node
from colony.observability import metrics, tracing
from colony.server.errors import install_error_handlers
from colony.server.observe import (
    ObservabilityMiddleware,
    install_node_collectors,
    make_metrics_router,
    metrics_router,
    sse_hook,
)
from colony.store import Database, open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.testing import AgentInfo, FunctionModel
from colony.tools.approval import ApprovalRequest, Decision
from colony.tools.middleware import ToolExecutor
from colony.tools.registry import ToolContext, ToolRegistry, tool
from colony.tools.workspace import Workspace

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"


class NoteArgs(BaseModel):
    name: str
    text: str = ""


@tool(effect="write")
async def save_note(ctx: ToolContext, args: NoteArgs) -> str:
    """Save a note into the workspace."""
    ctx.workspace.resolve(f"{args.name}.txt").write_text(args.text)
    return f"saved {args.name}"


@tool()
async def read_note(ctx: ToolContext, args: NoteArgs) -> str:
    """Read a note from the workspace."""
    path = ctx.workspace.resolve(f"{args.name}.txt")
    if not path.exists():
        raise ToolError("read_note", f"no note {args.name}")
    return path.read_text()


async def approve(request: ApprovalRequest) -> Decision:
    return "approved"


def notes_model(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
    """Save a note (needs approval), read it back and call a tool that does not exist; then answer."""
    if not isinstance(messages[-1], ToolResultMessage):
        return AssistantMessage(tool_calls=[
            ToolCall(id="c1", name="save_note", arguments={"name": "a", "text": "alpha"}),
            ToolCall(id="c2", name="read_note", arguments={"name": "a"}),
            ToolCall(id="c3", name="made_up_tool", arguments={}),
        ])
    return "Saved and read back alpha."


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    metrics.reset_metrics()
    yield
    tracing.reset_tracing()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = open_database(tmp_path / "obs.db")
    yield d
    d.close()


@pytest.fixture
def deps(settings: Settings, db: Database) -> RunDeps:
    s = settings.model_copy(update={"tool_policy": {"save_note": "ask", "read_note": "allow"}})
    records = SqliteRecordStore(db)
    executor = ToolExecutor(ToolRegistry([save_note, read_note]), s, records, approver=approve)
    return RunDeps(records=records, executor=executor, workspace=Workspace(s.workspace), settings=s)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    obs.configure_tracing(None, exporter=exporter)
    yield exporter
    obs.reset_tracing()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    obs.configure_logging("INFO", json=True, stream=stream)
    yield stream
    obs.reset_logging()
    root.setLevel(level)


def scrape() -> dict[str, Any]:
    body, content_type = obs.render_latest()
    assert content_type.startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def sample(families: dict[str, Any], family: str, sample_name: str, **labels: str) -> float | None:
    for s in families[family].samples:
        if s.name == sample_name and s.labels == labels:
            return float(s.value)
    return None


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


# -- metrics --------------------------------------------------------------------------------

ALL_FAMILIES = {
    "colony_http_requests", "colony_http_request_seconds", "colony_turns", "colony_turn_seconds",
    "colony_model_request_seconds", "colony_model_tokens", "colony_tool_calls", "colony_approvals",
    "colony_circuit_state", "colony_memory_items", "colony_sse_streams_active",
}


async def test_metrics_after_a_real_turn_with_tools(deps: RunDeps) -> None:
    fin, _ = await run_turn_collect(Agent(model=FunctionModel(notes_model)), deps, "Save a note and read it.")
    assert fin.status == "completed" and fin.tool_calls == 3

    fams = scrape()
    assert set(fams) >= ALL_FAMILIES
    tool_total = "colony_tool_calls_total"
    assert sample(fams, "colony_tool_calls", tool_total, tool="save_note", outcome="ok") == 1
    assert sample(fams, "colony_tool_calls", tool_total, tool="read_note", outcome="ok") == 1
    # A name the model invented is not a label value of its own (cardinality stays bounded).
    assert sample(fams, "colony_tool_calls", tool_total, tool="unknown", outcome="unknown_tool") == 1
    assert sample(fams, "colony_tool_calls", tool_total, tool="made_up_tool", outcome="unknown_tool") is None
    assert sample(fams, "colony_approvals", "colony_approvals_total", decision="approved") == 1
    assert sample(fams, "colony_turns", "colony_turns_total", status="completed") == 1
    assert sample(fams, "colony_turn_seconds", "colony_turn_seconds_count") == 1
    labels = {"provider": "function", "model": "function"}
    assert sample(fams, "colony_model_request_seconds", "colony_model_request_seconds_count", **labels) == 2
    prompt = sample(fams, "colony_model_tokens", "colony_model_tokens_total", kind="prompt", **labels)
    completion = sample(fams, "colony_model_tokens", "colony_model_tokens_total", kind="completion", **labels)
    assert prompt == fin.usage.prompt_tokens and completion == fin.usage.completion_tokens
    assert prompt and completion
    assert sample(fams, "colony_memory_items", "colony_memory_items") == 0
    assert sample(fams, "colony_sse_streams_active", "colony_sse_streams_active") == 0


async def test_cancelled_turn_and_denied_approval_are_counted(deps: RunDeps) -> None:
    release = asyncio.Event()

    async def never(request: ApprovalRequest) -> Decision:
        await release.wait()
        return "approved"

    executor = ToolExecutor(deps.executor.registry, deps.settings, deps.records, approver=never)
    slow = RunDeps(records=deps.records, executor=executor, workspace=deps.workspace, settings=deps.settings)

    async def consume() -> None:
        async for _ in run_turn(Agent(model=FunctionModel(notes_model)), slow, "Save a note."):
            pass

    task = asyncio.create_task(consume())
    for _ in range(200):
        await asyncio.sleep(0.005)
        if deps.records.list_approvals(status="pending"):
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fams = scrape()
    assert sample(fams, "colony_turns", "colony_turns_total", status="cancelled") == 1
    assert sample(fams, "colony_approvals", "colony_approvals_total", decision="cancelled") == 1
    assert sample(fams, "colony_tool_calls", "colony_tool_calls_total", tool="save_note", outcome="cancelled") == 1


async def test_circuit_state_is_read_at_scrape_time(settings: Settings, db: Database) -> None:
    now = [1000.0]
    s = settings.model_copy(update={"tool_policy": {"read_note": "allow"}, "tool_circuit_failures": 1,
                                    "tool_circuit_cooldown_s": 10.0})
    executor = ToolExecutor(ToolRegistry([read_note]), s, SqliteRecordStore(db), clock=lambda: now[0])
    uninstall = metrics.register_circuit_source("tool", executor.breaker_states)
    try:
        ctx = ToolContext(workspace=Workspace(s.workspace), settings=s, session_id=None, turn_id=None)
        ok = await executor.call(ToolCall(id="x", name="read_note", arguments={"name": "missing"}), ctx)
        assert ok.outcome == "error"  # one failure opens the breaker (failures=1)
        circuit = ("colony_circuit_state", "colony_circuit_state")
        assert sample(scrape(), *circuit, scope="tool", name="read_note") == 2
        now[0] += 11  # cooldown over: half-open, with nothing having updated a gauge
        assert sample(scrape(), *circuit, scope="tool", name="read_note") == 1
        executor.breaker("read_note").record_success()
        assert sample(scrape(), *circuit, scope="tool", name="read_note") == 0
    finally:
        uninstall()
    assert sample(scrape(), "colony_circuit_state", "colony_circuit_state", scope="tool", name="read_note") is None


async def test_node_collectors_report_model_and_tool_breakers(settings: Settings) -> None:
    s = settings.model_copy(update={
        "providers": [ProviderConfig(name="dead", base_url="http://127.0.0.1:9/v1", model="m", max_retries=0)],
        "model_circuit_failures": 1, "retry_base_delay_s": 0.0,
    })
    node = Node(s)
    uninstall = install_node_collectors(node)
    try:
        node.executor.breaker("read_file")
        fams = scrape()
        assert sample(fams, "colony_circuit_state", "colony_circuit_state", scope="tool", name="read_file") == 0
        assert not [x for x in fams["colony_circuit_state"].samples if x.labels["scope"] == "model"]
        cascade = await node.model()
        with pytest.raises(Exception, match="No model provider could answer"):
            await cascade.request([], ModelSettings(), [])
        assert sample(scrape(), "colony_circuit_state", "colony_circuit_state", scope="model", name="dead") == 2
    finally:
        await node.aclose()
    del node, cascade
    gc.collect()
    # The node is held weakly: once it is gone its sources report nothing (and break nothing).
    assert scrape()["colony_circuit_state"].samples == []
    uninstall()


def test_memory_source_and_a_broken_source_do_not_break_the_scrape() -> None:
    metrics.set_memory_items_source(lambda: 42)

    def broken() -> dict[str, str]:
        raise RuntimeError("boom")

    uninstall = metrics.register_circuit_source("model", broken)
    try:
        fams = scrape()
        assert sample(fams, "colony_memory_items", "colony_memory_items") == 42
        assert fams["colony_circuit_state"].samples == []
    finally:
        uninstall()
        metrics.set_memory_items_source(None)
    assert sample(scrape(), "colony_memory_items", "colony_memory_items") == 0


def test_sse_gauge_and_reset() -> None:
    sse_hook(True)
    sse_hook(True)
    sse_hook(False)
    assert sample(scrape(), "colony_sse_streams_active", "colony_sse_streams_active") == 1
    metrics.reset_metrics()
    assert sample(scrape(), "colony_sse_streams_active", "colony_sse_streams_active") == 0


# -- logs -----------------------------------------------------------------------------------


class Leaky:
    def __repr__(self) -> str:
        return f"Leaky(key={SECRET})"


def test_log_lines_are_json_with_request_id_and_no_secrets(log_stream: io.StringIO) -> None:
    log = obs.get_logger("colony.test")
    with obs.request_id_scope("req-42") as rid:
        assert obs.current_request_id() == rid == "req-42"
        log.info("calling provider", api_key="plain-looking-value", url="https://x", header=f"Bearer {SECRET}",
                 client=Leaky())
        logging.getLogger("uvicorn.error").warning("retrying with %s", f"OPENAI_API_KEY={SECRET}")
        try:
            raise RuntimeError(f"provider said no to {SECRET}")
        except RuntimeError:
            log.exception("provider failed")
    log.info("outside any request")

    raw = log_stream.getvalue()
    assert SECRET not in raw and "plain-looking-value" not in raw
    first, foreign, failed, outside = log_lines(log_stream)
    assert first["event"] == "calling provider" and first["request_id"] == "req-42"
    assert first["level"] == "info" and first["logger"] == "colony.test"
    assert first["api_key"] == "[REDACTED]" and first["header"] == "Bearer [REDACTED]"
    assert first["url"] == "https://x" and first["client"] == "Leaky(key=[REDACTED])"
    assert datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    # stdlib loggers (uvicorn's) come out in the same shape, redacted too.
    assert foreign["logger"] == "uvicorn.error" and foreign["level"] == "warning"
    assert foreign["request_id"] == "req-42" and "[REDACTED]" in foreign["event"]
    assert "RuntimeError" in failed["exception"] and "[REDACTED]" in failed["exception"]
    assert "request_id" not in outside


def test_logging_level_text_mode_and_reconfiguration(log_stream: io.StringIO) -> None:
    obs.get_logger("colony.test").debug("hidden at INFO")
    assert log_stream.getvalue() == ""
    text = io.StringIO()
    obs.configure_logging("DEBUG", json=False, stream=text)
    obs.get_logger("colony.test").debug("now visible", token=SECRET)
    assert log_stream.getvalue() == ""  # the first handler was replaced, not duplicated
    out = text.getvalue()
    assert "now visible" in out and SECRET not in out and not out.lstrip().startswith("{")


# -- traces ---------------------------------------------------------------------------------


async def test_spans_for_a_turn_its_model_requests_and_tool_calls(
    deps: RunDeps, spans: InMemorySpanExporter
) -> None:
    fin, _ = await run_turn_collect(Agent(model=FunctionModel(notes_model)), deps, "Save a note and read it.")
    finished = spans.get_finished_spans()
    (turn,) = by_name(finished, "colony.turn")
    models = by_name(finished, "colony.model_request")
    tools = by_name(finished, "colony.tool_call")
    assert turn.attributes is not None and turn.context is not None
    assert turn.attributes["colony.turn_id"] == fin.turn_id
    assert turn.attributes["colony.status"] == "completed"
    assert len(models) == 2 and len(tools) == 3
    for child in (*models, *tools):
        assert child.parent is not None and child.parent.span_id == turn.context.span_id
        assert child.context is not None and child.context.trace_id == turn.context.trace_id
    outcomes = {s.attributes["colony.tool"]: s.attributes["colony.outcome"] for s in tools if s.attributes}
    assert outcomes == {"save_note": "ok", "read_note": "ok", "made_up_tool": "unknown_tool"}
    failed = [s for s in tools if s.status.status_code is StatusCode.ERROR]
    assert [s.attributes["colony.tool"] for s in failed if s.attributes] == ["made_up_tool"]
    assert models[0].attributes is not None
    tokens = models[0].attributes["gen_ai.usage.input_tokens"]
    assert isinstance(tokens, int) and tokens > 0
    assert models[0].attributes["colony.provider"] == "function"


async def test_turn_started_in_one_task_and_pumped_in_another_keeps_its_parent(
    deps: RunDeps, spans: InMemorySpanExporter, log_stream: io.StringIO
) -> None:
    """The server's pattern: first event in the request (inside its span), the rest in a task."""
    events: list[Any] = []
    with obs.span("POST /api/v1/chat") as request_span:
        gen = run_turn(Agent(model=FunctionModel(notes_model)), deps, "Save a note and read it.")
        first = await gen.__anext__()
        assert isinstance(first, TurnStarted)

        async def pump() -> None:
            async for ev in gen:
                events.append(ev)

        task = asyncio.create_task(pump())
    await task
    assert isinstance(events[-1], TurnFinished) and events[-1].status == "completed"
    finished = spans.get_finished_spans()
    (turn,) = by_name(finished, "colony.turn")
    assert turn.parent is not None and turn.parent.span_id == request_span.get_span_context().span_id
    assert all(s.parent is not None and turn.context is not None and s.parent.span_id == turn.context.span_id
               for s in by_name(finished, "colony.tool_call"))
    assert "Failed to detach context" not in log_stream.getvalue()


async def test_a_failing_model_marks_the_turn_and_request_spans(
    deps: RunDeps, spans: InMemorySpanExporter
) -> None:
    def broken(messages: list[Message], info: AgentInfo) -> str:
        raise RuntimeError(f"upstream rejected key {SECRET}")

    fin, _ = await run_turn_collect(Agent(model=FunctionModel(broken)), deps, "hello")
    assert fin.status == "failed"
    finished = spans.get_finished_spans()
    (turn,) = by_name(finished, "colony.turn")
    (request,) = by_name(finished, "colony.model_request")
    assert turn.status.status_code is StatusCode.ERROR and request.status.status_code is StatusCode.ERROR
    (event,) = request.events
    assert event.attributes is not None and event.attributes["exception.type"] == "RuntimeError"
    assert SECRET not in str(event.attributes["exception.message"]) + str(request.status.description)
    assert sample(scrape(), "colony_turns", "colony_turns_total", status="failed") == 1


async def test_tracing_disabled_records_nothing_and_costs_nothing(deps: RunDeps) -> None:
    exporter = InMemorySpanExporter()
    obs.configure_tracing(None, exporter=exporter)
    obs.configure_tracing(None)  # no endpoint, no exporter: off again
    assert not obs.tracing_enabled()
    with obs.span("anything", {"k": "v"}) as sp:
        assert sp is INVALID_SPAN and not sp.is_recording()
    assert obs.start_span("x") is INVALID_SPAN
    fin, _ = await run_turn_collect(Agent(model=FunctionModel(notes_model)), deps, "Save a note and read it.")
    assert fin.status == "completed"
    assert exporter.get_finished_spans() == ()


def test_reconfiguring_tracing_moves_spans_to_the_new_exporter() -> None:
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    obs.configure_tracing(None, exporter=first)
    with obs.span("one"):
        pass
    obs.configure_tracing(None, exporter=second)
    with obs.span("two", kind="test"), obs.span("three"):
        pass
    assert [s.name for s in first.get_finished_spans()] == ["one"]
    three, two = second.get_finished_spans()
    assert two.attributes == {"kind": "test"}
    assert three.parent is not None and two.context is not None and three.parent.span_id == two.context.span_id


def test_otlp_endpoint_exports_batched_spans_over_http() -> None:
    received: list[tuple[str, str, int]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], len(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        obs.configure_tracing(f"http://127.0.0.1:{server.server_port}", service_name="colony-test")
        assert obs.tracing_enabled()
        with obs.span("exported", answer=42):
            pass
        obs.reset_tracing()  # flushes the batch
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert received and received[0][0] == "/v1/traces"
    assert received[0][1] == "application/x-protobuf" and received[0][2] > 0


# -- HTTP middleware ------------------------------------------------------------------------


def tiny_app(tmp_path: Path) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.token = "node-token"

    @app.get("/items/{item_id}")
    async def item(item_id: str, request: Request) -> dict[str, str]:
        with obs.span("lookup"):
            return {"item": item_id, "request_id": request.state.request_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    sub = FastAPI()

    @sub.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    app.mount("/sub", sub)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "a.css").write_text("body{}")
    app.mount("/static", StaticFiles(directory=tmp_path / "static"), name="static")
    app.include_router(metrics_router)
    app.add_middleware(ObservabilityMiddleware)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_middleware_records_route_templates_and_echoes_request_ids(
    tmp_path: Path, spans: InMemorySpanExporter, log_stream: io.StringIO
) -> None:
    app = tiny_app(tmp_path)
    async with client(app) as c:
        echoed = await c.get("/items/a1", headers={"X-Request-ID": "abc-123", "Cookie": "colony_session=c00kie"})
        generated = await c.get("/items/b2", headers={"X-Request-ID": "not ok; drop table"})
        assert (await c.get("/sub/things/t9")).json() == {"thing": "t9"}
        assert (await c.get("/static/a.css")).status_code == 200
        assert (await c.get("/nowhere/at/all")).status_code == 404
        assert (await c.get("/boom")).status_code == 500
        unauthorized = await c.get("/metrics")
        scraped = await c.get("/metrics", headers={"Authorization": "Bearer node-token"})

    assert echoed.headers["x-request-id"] == "abc-123" and echoed.json()["request_id"] == "abc-123"
    rid = generated.headers["x-request-id"]
    assert rid != "not ok; drop table" and len(rid) == 32 and generated.json()["request_id"] == rid
    assert unauthorized.status_code == 401
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")

    fams = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    requests = {(s.labels["route"], s.labels["status"]): s.value for s in fams["colony_http_requests"].samples}
    assert requests[("/items/{item_id}", "200")] == 2
    assert requests[("/sub/things/{thing_id}", "200")] == 1
    assert requests[("/static/{path}", "200")] == 1
    assert requests[("unmatched", "404")] == 1
    assert requests[("/boom", "500")] == 1
    assert requests[("/metrics", "401")] == 1
    assert not any("a1" in route or "b2" in route for route, _ in requests)
    assert sample(fams, "colony_http_request_seconds", "colony_http_request_seconds_count",
                  route="/items/{item_id}") == 2

    access = [line for line in log_lines(log_stream) if line.get("logger") == "colony.access"]
    assert [a["route"] for a in access][:2] == ["/items/{item_id}", "/items/{item_id}"]
    assert access[0]["request_id"] == "abc-123" and access[0]["status"] == 200 and access[0]["method"] == "GET"
    assert access[0]["duration_ms"] >= 0
    boom_line = next(a for a in access if a["route"] == "/boom")
    assert boom_line["level"] == "error" and boom_line["status"] == 500
    raw = log_stream.getvalue()
    assert "node-token" not in raw and "c00kie" not in raw

    finished = spans.get_finished_spans()
    item_spans = by_name(finished, "GET /items/{item_id}")
    assert len(item_spans) == 2
    assert all(s.attributes and s.attributes["http.route"] == "/items/{item_id}" for s in item_spans)
    # A span started inside the endpoint is a child of its request's span.
    request_ids = {s.context.span_id for s in item_spans if s.context is not None}
    assert {s.parent.span_id for s in by_name(finished, "lookup") if s.parent is not None} == request_ids
    (boom_span,) = by_name(finished, "GET /boom")
    assert boom_span.status.status_code is StatusCode.ERROR


async def test_middleware_does_not_buffer_a_streaming_response() -> None:
    """The app waits for its first chunk to reach the client before producing the second one:
    a buffering middleware would deadlock here."""
    first_chunk_delivered = asyncio.Event()
    app = FastAPI()

    @app.get("/api/v1/turns/{turn_id}/events")
    async def events(turn_id: str) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            sse_hook(True)
            try:
                yield b"event: turn_started\ndata: {}\n\n"
                await first_chunk_delivered.wait()
                yield b"event: turn_finished\ndata: {}\n\n"
            finally:
                sse_hook(False)

        return StreamingResponse(body(), media_type="text/event-stream")

    app.add_middleware(ObservabilityMiddleware)
    sent: list[MutableMapping[str, Any]] = []
    disconnect = asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        if not sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and b"turn_started" in message.get("body", b""):
            assert sample(scrape(), "colony_sse_streams_active", "colony_sse_streams_active") == 1
            first_chunk_delivered.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/api/v1/turns/t_1/events", "raw_path": b"/api/v1/turns/t_1/events",
        "root_path": "", "query_string": b"", "headers": [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    bodies = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
    assert any(b"turn_started" in b for b in bodies) and any(b"turn_finished" in b for b in bodies)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert any(k == b"x-request-id" for k, _ in start["headers"])
    fams = scrape()
    assert sample(fams, "colony_sse_streams_active", "colony_sse_streams_active") == 0
    assert sample(fams, "colony_http_requests", "colony_http_requests_total",
                  route="/api/v1/turns/{turn_id}/events", method="GET", status="200") == 1


async def test_open_metrics_router_without_auth() -> None:
    app = FastAPI()
    app.include_router(make_metrics_router(None))
    metrics.observe_tool_call("read_file", "ok")
    async with client(app) as c:
        response = await c.get("/metrics")
    assert response.status_code == 200 and 'colony_tool_calls_total{outcome="ok",tool="read_file"} 1.0' in response.text


# -- wiring and layering --------------------------------------------------------------------


def test_configure_observability_from_settings(settings: Settings, spans: InMemorySpanExporter) -> None:
    root = logging.getLogger()
    level = root.level
    try:
        obs.configure_observability(settings.model_copy(update={"log_level": "WARNING", "otlp_endpoint": None}))
        assert root.level == logging.WARNING
        assert not obs.tracing_enabled()  # no endpoint: the in-memory exporter was replaced by no-op
    finally:
        obs.reset_logging()
        root.setLevel(level)


def test_the_base_layer_imports_no_upper_layer_and_nothing_heavy() -> None:
    code = (
        "import sys, colony.observability as o\n"
        "assert all(hasattr(o, n) for n in o.__all__)\n"
        "upper = [m for m in sys.modules if m.startswith(('colony.agent', 'colony.tools', 'colony.server', "
        "'colony.cli', 'colony.node'))]\n"
        "heavy = [m for m in ('structlog', 'prometheus_client', 'opentelemetry.sdk') if m in sys.modules]\n"
        "print(upper, heavy)\n"
        "assert not upper and not heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_a_request_cancelled_before_its_response_is_counted_as_499() -> None:
    entered = asyncio.Event()

    async def hanging_app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    middleware = ObservabilityMiddleware(hanging_app)
    scope = {"type": "http", "method": "POST", "path": "/x", "root_path": "", "headers": []}

    async def nothing() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b""}

    async def discard(message: MutableMapping[str, Any]) -> None:
        pass

    task = asyncio.create_task(middleware(scope, nothing, discard))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sample(scrape(), "colony_http_requests", "colony_http_requests_total",
                  route="unmatched", method="POST", status="499") == 1


def test_uvicorn_colour_duplicates_are_dropped_from_json_lines() -> None:
    import io
    import json
    import logging

    from colony.observability.logs import configure_logging, reset_logging

    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42, extra={"color_message": "\x1b[36m%d\x1b[0m"})
    finally:
        reset_logging()
    [line] = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["event"] == "Started server process [42]" and "color_message" not in line


def test_vetted_events_skip_redaction_only_when_every_value_is_plain(log_stream: io.StringIO) -> None:
    """The access line is marked vetted; a vetted event carrying an object is redacted all the same,
    and the marker itself never reaches the output."""
    log = obs.get_logger("colony.test")
    log.info("http_request", method="GET", route="/x", status=200, _vetted=True)
    log.info("http_request", method="GET", client=Leaky(), _vetted=True)
    plain, with_object = log_lines(log_stream)
    assert plain == {k: plain[k] for k in plain} and "_vetted" not in plain and plain["route"] == "/x"
    assert "_vetted" not in with_object and with_object["client"] == "Leaky(key=[REDACTED])"
    assert SECRET not in log_stream.getvalue()


async def test_an_unknown_http_method_is_logged_and_counted_as_other(tmp_path: Path, log_stream: io.StringIO) -> None:
    app = tiny_app(tmp_path)
    async with client(app) as c:
        await c.request("SK-LIVE0123456789ABCDEFGHIJ", "/items/a1")
    access = [line for line in log_lines(log_stream) if line.get("event") == "http_request"]
    assert access and access[-1]["method"] == "_OTHER"
    assert "SK-LIVE" not in log_stream.getvalue()
