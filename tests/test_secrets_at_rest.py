"""No secret at rest: after a scenario full of secrets, no text column of the database holds one.

Secrets arrive by every path a real node sees: the user's prompt, the model's own tool-call
arguments and answers, a tool's output, a provider's error text, a memory the agent stores, a
durable task's goal and its recorded model I/O, an approval's arguments. The store redacts at its
boundary, so the check reads every column of every table (FTS shadow tables included) straight
from SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from typing import Any

import apsw
import pytest

from colony.agent.loop import run_turn
from colony.config import Settings
from colony.node import Node
from colony.tasks import TaskSpec
from colony.tasks.autonomy import open_store, run_once
from colony.testing import Reply, ScriptedModelServer

SECRETS = {
    "prompt": "sk-proj-PromptSecret0123456789abcdef",
    "args": "ghp_ArgsSecret0123456789abcdefABCDEF",
    "labelled": "hunter2-labelled-value",
    "answer": "AKIAANSWERSECRET1234",
    "provider": "sk-ProviderErrorSecret0123456789",
    "memory": "xoxb-MemorySecret-0123456789",
    "task": "sk-TaskGoalSecret0123456789abcdef",
    "tool_output": "github_pat_ToolOutputSecret0123456789abc",
    "approval": "AIzaApprovalSecret0123456789abcdefghijk",
}


def script(body: dict[str, Any]) -> Reply:
    msgs = body["messages"]
    last_user = max(i for i, m in enumerate(msgs) if m["role"] == "user")
    goal = msgs[last_user]["content"]
    done = [m for m in msgs[last_user + 1:] if m["role"] == "tool"]
    if "provider" in goal:
        return Reply.error(400, f"invalid api key {SECRETS['provider']} for this model")
    if "approval" in goal:
        if not done:
            return Reply.tool_calls([("patch_file", {"path": "x.txt", "patch": f"token {SECRETS['approval']}"})])
        return Reply.text("ok")
    if not done:
        return Reply.tool_calls([
            ("write_file", {"path": "cfg.env", "content": f"OPENAI_API_KEY={SECRETS['labelled']}\n{SECRETS['args']}\n"}),
            ("read_file", {"path": "cfg.env"}),
            ("memory_store", {"content": f"the deploy token is {SECRETS['memory']}"}),
            ("run_command", {"command": f"echo {SECRETS['tool_output']}"}),
        ])
    return Reply.text(f"done; the key was {SECRETS['answer']}")


@pytest.fixture
async def node(model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    model.set_script(script)
    model.rejections_expected = False
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLONY_MODEL_MAX_RETRIES", "0")
    monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"write_file": "allow", "run_command": "allow",
                                                         "patch_file": "ask"}))
    monkeypatch.setenv("COLONY_APPROVAL_TIMEOUT_S", "0.2")
    n = Node(Settings())
    yield n
    await n.aclose()


async def test_no_text_column_holds_a_secret(node: Node) -> None:
    agent = await node.agent()
    events = [ev async for ev in run_turn(agent, node.deps, f"use my key {SECRETS['prompt']} please")]
    assert events[-1].status == "completed"  # type: ignore[attr-defined]
    assert "OPENAI_API_KEY" in (node.settings.workspace / "cfg.env").read_text()  # the tool itself got it
    failed = [ev async for ev in run_turn(agent, node.deps, "trigger the provider failure")]
    assert failed[-1].status == "failed"  # type: ignore[attr-defined]
    [ev async for ev in run_turn(agent, node.deps, "needs an approval")]
    store = open_store(node)
    store.post(TaskSpec(goal=f"task with {SECRETS['task']} inside: write the config"))
    run = await run_once(node, worker="w1")
    assert run is not None
    await asyncio.sleep(0)

    leaks = scan(node.settings.db_path)
    assert leaks == [], "\n".join(leaks)


def scan(path: Any) -> list[str]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        leaks = []
        for table in tables:
            try:
                rows = list(conn.execute(f'SELECT * FROM "{table}"'))
            except apsw.SQLError:  # virtual tables whose module is not loaded here (vec0)
                continue
            for row in rows:
                for value in row:
                    if isinstance(value, bytes):
                        with contextlib.suppress(zlib.error):
                            value = zlib.decompress(value)  # checkpoint tapes are compressed
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    for name, secret in SECRETS.items():
                        if secret in text:
                            leaks.append(f"{table}: the {name} secret")
        return sorted(set(leaks))
    finally:
        conn.close()
