"""A node whose conversation records live on PostgreSQL (``COLONY_DATABASE_URL``).

A chat turn through the agent loop writes its session, turn, messages, episode, model calls,
tool-call audit and approval to PostgreSQL and nothing to those tables of the node's SQLite file;
no secret of the prompt or the tool arguments reaches any PostgreSQL column; the server's session,
audit and approvals API reads the records back; and a starting node interrupts only its own
host's orphaned turns. The store's behaviour itself is tests/contract/test_record_store_contract.py.
"""

from __future__ import annotations

import asyncio
import json

import acp
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from typer.testing import CliRunner

from colony.acp import AcpApprover, ColonyAcpAgent
from colony.agent.loop import Agent, run_turn_collect
from colony.cli import app as cli_app
from colony.config import Settings
from colony.llm.messages import AssistantMessage, Message, ToolCall, ToolResultMessage
from colony.node import Node
from colony.server import create_app
from colony.server.turns import ApprovalBroker
from colony.store.audit import ApprovalRecord
from colony.store.pg import open_pg
from colony.store.pg.records import PgRecordStore
from colony.store.pg.shared import close_for
from colony.store.sqlite_records import SqliteRecordStore
from colony.testing import AgentInfo, FunctionModel
from colony.tools.approval import ApprovalRequest, Decision

TABLES = ("sessions", "turns", "messages", "episodes", "tool_calls", "approvals", "llm_calls")
SECRET = "sk-NodeOnPostgres0123456789abcdef"
TOKEN = "records-pg-token-0123456789"


@pytest.fixture
def on_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    return pg_url


def writes_a_note(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
    """Write the note the user asked for (its text holds the secret), then say it is done."""
    if isinstance(messages[-1], ToolResultMessage):
        return "Saved the note."
    return AssistantMessage(tool_calls=[ToolCall(id="call_1", name="write_file", arguments={
        "path": "notes.txt", "content": f"deploy token {SECRET}"})])


async def approve(request: ApprovalRequest) -> Decision:
    return "approved"


def _rows_as_text(url: str) -> dict[str, list[str]]:
    """Every row of every table in the database, each as PostgreSQL's text of the whole row."""
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE'").fetchall()]
        return {t: [r[0] for r in conn.execute(sql.SQL("SELECT x::text FROM {} x").format(sql.Identifier(t)))]
                for t in tables}


def test_a_turn_on_a_postgresql_node_is_recorded_there_and_read_back_by_the_api(on_postgres: str) -> None:
    with psycopg.connect(on_postgres) as conn:  # the node's first start migrates an empty database
        assert conn.execute("SELECT to_regclass('sessions')").fetchone() == (None,)
    node = Node(Settings(), approver=approve)
    assert isinstance(node.records, PgRecordStore)
    agent = Agent.from_settings(FunctionModel(writes_a_note), node.settings)
    finished, _ = asyncio.run(run_turn_collect(agent, node.deps, f"Save a note with my token {SECRET}", surface="web"))
    assert finished.status == "completed" and finished.text == "Saved the note."
    assert (node.settings.workspace / "notes.txt").read_text() == f"deploy token {SECRET}"  # the tool did run
    assert {t: node.db.scalar(f"SELECT count(*) FROM {t}") for t in TABLES} == dict.fromkeys(TABLES, 0)
    asyncio.run(node.aclose())

    rows = _rows_as_text(on_postgres)
    assert {t: len(rows[t]) for t in TABLES} == {"sessions": 1, "turns": 1, "messages": 4, "episodes": 1,
                                                 "tool_calls": 1, "approvals": 1, "llm_calls": 2}
    leaked = {t for t, values in rows.items() if any(SECRET in v for v in values)}
    assert leaked == set()
    assert all("[REDACTED]" in rows[t][0] for t in ("sessions", "turns", "tool_calls", "approvals"))

    broker = ApprovalBroker()
    app = create_app(Node(Settings(), approver=broker), broker, token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        [session] = client.get("/api/v1/sessions").json()["items"]
        assert (session["id"], session["turns"], session["surface"]) == (finished.session_id, 1, "web")
        assert SECRET not in session["title"] and session["updated_at"].endswith("Z")
        detail = client.get(f"/api/v1/sessions/{finished.session_id}").json()
        [turn] = detail["turns"]
        assert (turn["id"], turn["status"], turn["final_text"], turn["tool_calls"], turn["model_requests"]) == (
            finished.turn_id, "completed", "Saved the note.", 1, 2)
        messages = client.get(f"/api/v1/sessions/{finished.session_id}/messages").json()["items"]
        assert [m["kind"] for m in messages] == ["user", "assistant", "tool", "assistant"]
        assert messages[1]["tool_calls"][0]["arguments"]["path"] == "notes.txt"
        [audit] = client.get("/api/v1/audit", params={"session_id": finished.session_id}).json()["items"]
        assert (audit["tool"], audit["outcome"], audit["approval"]) == ("write_file", "ok", "approved")
        assert audit["arguments"]["content"] == "deploy token [REDACTED]"
        [approval] = client.get("/api/v1/approvals").json()["items"]
        assert (approval["tool"], approval["status"], approval["decided_by"]) == ("write_file", "approved", "surface")
        record = client.get(f"/api/v1/turns/{finished.turn_id}").json()
        assert record["session_id"] == finished.session_id and SECRET not in record["prompt"]
        assert isinstance(record["perception"], dict)  # stored as JSON text, served parsed
    try:
        history = CliRunner().invoke(cli_app, ["history", "--json"], catch_exceptions=False)
    finally:
        close_for(Settings())  # the CLI's process-wide pool
    assert history.exit_code == 0, history.output
    shown = json.loads(history.stdout)
    assert [s["id"] for s in shown["sessions"]] == [finished.session_id]
    assert [c["tool"] for c in shown["tool_calls"]] == ["write_file"]


async def test_an_editor_session_on_a_postgresql_node_survives_a_restart(on_postgres: str) -> None:
    """ACP keeps the editor's folder in the node's file and the conversation on PostgreSQL."""
    settings = Settings()
    cwd = str(settings.workspace)
    sid = ""
    for restart in (False, True):
        approver = AcpApprover()
        node = Node(settings, approver=approver)
        agent = ColonyAcpAgent(node, approver, model=FunctionModel(lambda m, i: "hello from postgres"))
        try:
            await agent.initialize(protocol_version=acp.PROTOCOL_VERSION)
            if not restart:
                sid = (await agent.new_session(cwd=cwd, mcp_servers=[])).session_id
            else:
                await agent.load_session(cwd=cwd, session_id=sid, mcp_servers=[])
            done = await agent.prompt(session_id=sid, prompt=[acp.text_block("hi")])
            assert done.stop_reason == "end_turn"
            [listed] = (await agent.list_sessions(cwd=cwd)).sessions
            assert (listed.session_id, listed.title) == (sid, f"editor session in {settings.workspace.name}")
            assert node.db.scalar("SELECT count(*) FROM sessions") == 0  # the conversation is on PostgreSQL
            assert node.db.scalar("SELECT cwd FROM acp_sessions WHERE id = ?", (sid,)) == cwd
            assert [t["status"] for t in node.records.list_turns(sid)] == ["completed"] * (1 + restart)
        finally:
            await agent.aclose()
            await node.aclose()


def test_a_node_without_a_url_keeps_its_records_in_its_file(settings: Settings) -> None:
    node = Node(settings)
    try:
        assert isinstance(node.records, SqliteRecordStore) and node.records.db is node.db
    finally:
        asyncio.run(node.aclose())


def test_a_starting_node_interrupts_only_its_own_hosts_orphaned_turns(on_postgres: str) -> None:
    pg = open_pg(on_postgres)
    try:
        here, there = PgRecordStore(pg), PgRecordStore(pg, host="another-machine")
        sid = here.create_session(title="shared")
        mine, theirs, copied = (here.start_turn(sid, "mine", None), there.start_turn(sid, "theirs", None),
                                here.start_turn(sid, "copied from SQLite", None))
        pg.execute("UPDATE turns SET pid = 999999999")  # no such process here
        pg.execute("UPDATE turns SET host = NULL WHERE id = %s", (copied,))  # a row the copier brought over
        for tid in (mine, theirs):
            here.create_approval(ApprovalRecord(approval_id=f"apr_{tid}", session_id=sid, turn_id=tid, call_id="c",
                                                tool="write_file", arguments={}, reason="r", timeout_s=60))
    finally:
        pg.close()
    node = Node(Settings())  # opening the records sweeps this host's orphans once
    try:
        status = {t["id"]: t["status"] for t in node.records.list_turns(sid)}
        assert status == {mine: "interrupted", theirs: "running", copied: "interrupted"}
        approvals = {a["turn_id"]: a["status"] for a in node.records.list_approvals()}
        assert approvals == {mine: "expired", theirs: "pending"}  # another machine's turn still waits for its answer
    finally:
        asyncio.run(node.aclose())
