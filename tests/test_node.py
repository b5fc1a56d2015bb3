"""The node wiring: real provider cascade against the scripted server, with state kept in SQLite."""

from __future__ import annotations

import json

import pytest

from colony.agent.loop import run_turn_collect
from colony.config import Settings
from colony.node import Node
from colony.testing import Reply, ScriptedModelServer


async def test_per_day_limit_survives_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedModelServer([Reply.text("one"), Reply.text("two"), Reply.text("three")]) as server:
        monkeypatch.setenv(
            "COLONY_PROVIDERS",
            json.dumps(
                [{"name": "tiny", "base_url": server.base_url, "model": "scripted", "requests_per_day": 2}]
            ),
        )
        node = Node(Settings())
        try:
            agent = await node.agent()
            for expected in ("one", "two"):
                fin, _ = await run_turn_collect(agent, node.deps, "hi")
                assert fin.text == expected
        finally:
            await node.aclose()
        restarted = Node(Settings())
        try:
            agent = await restarted.agent()
            [health] = (await restarted.model()).health()
            assert health.requests_last_day == 2
            fin, _ = await run_turn_collect(agent, restarted.deps, "hi again")
            assert fin.status == "failed" and fin.error_code == "model_unavailable"
            assert "tiny" in (fin.error or "")
        finally:
            await restarted.aclose()
        assert len(server.requests) == 2  # the third request never left the node


async def test_builtin_tools_are_registered_with_schemas() -> None:
    node = Node(Settings())
    try:
        names = set(node.registry.names())
        assert {
            "read_file",
            "write_file",
            "patch_file",
            "list_dir",
            "search_files",
            "run_command",
            "http_get",
        } <= names
        for definition in node.registry.definitions():
            assert definition.parameters["type"] == "object" and definition.description
    finally:
        await node.aclose()


async def test_every_builtin_accepts_its_own_minimal_schema_arguments() -> None:
    from colony.testing import TestModel
    from colony.tools.approval import ApprovalRequest, Decision

    async def yes(req: ApprovalRequest) -> Decision:
        return "approved"

    # More built-ins than the default per-turn call budget (12): raise it so every tool is called.
    node = Node(Settings(max_tool_calls_per_turn=64), approver=yes)
    try:
        fin, _ = await run_turn_collect(await node.agent(TestModel()), node.deps, "call everything")
        rows = node.records.list_tool_calls()
        assert {r["tool"] for r in rows} == set(node.registry.names())
        for r in rows:
            # Values may be semantically wrong ("a" is not a URL) but the schema itself must be
            # satisfiable: no missing fields, no type mismatches, no unknown tools.
            assert r["outcome"] != "unknown_tool"
            assert "Field required" not in (r["error"] or "") and "Input should be" not in (
                r["error"] or ""
            ), r
        assert fin.status == "completed"
    finally:
        await node.aclose()
