"""GET /api/v1/cognition: the substrate snapshot over HTTP, on and off, behind the token."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from colony.cognition import MODULES
from colony.config import Settings
from colony.testing import NodeServer, Reply, ScriptedModelServer


def _wait_for_model(node: NodeServer) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{node.base_url}/api/v1/health").json()["model"]["available"] is False:
        assert time.monotonic() < deadline, "the node never connected to the scripted model"
        time.sleep(0.05)


def test_snapshot_after_a_turn_with_the_substrate_on(
    model: ScriptedModelServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLONY_COGNITION_ENABLED", "true")
    (workspace / "a.txt").write_text("alpha")
    model.set_script([Reply.tool_calls([("read_file", {"path": "a.txt"})]), Reply.text("It says alpha.")])
    with NodeServer(Settings()) as node:
        _wait_for_model(node)
        assert httpx.get(f"{node.base_url}/api/v1/cognition").status_code == 401
        with httpx.Client(base_url=node.base_url, headers=node.auth, timeout=30) as c:
            with c.stream("POST", "/api/v1/chat/stream", json={"prompt": "read a.txt"}) as r:
                assert "turn_finished" in "".join(r.iter_text())
            snap = c.get("/api/v1/cognition").json()
    assert snap["enabled"] is True and set(snap["modules"]) == set(MODULES)
    assert snap["regime"] in {"exploit", "balanced", "explore", "conservative"}
    assert snap["modules"]["surprise"]["predictions"] >= 1  # the read_file call was predicted and scored
    assert "read_file" in json.dumps(snap["modules"]["beliefs"])


def test_snapshot_with_the_substrate_off_says_so(model: ScriptedModelServer) -> None:
    with NodeServer(Settings()) as node, httpx.Client(base_url=node.base_url, headers=node.auth) as c:
        snap = c.get("/api/v1/cognition").json()
    assert snap["enabled"] is False and set(snap["modules"]) == set(MODULES)
