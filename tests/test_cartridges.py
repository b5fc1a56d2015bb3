"""Cartridges: deploy, serve at /c/{slug}, persist KV, compose, hot-swap, roll back; CLI and tools."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from colony.cartridges import MAX_DEPTH, CartridgeRequest, Cartridges
from colony.cli import app
from colony.config import Settings
from colony.errors import CartridgeError
from colony.store import Database, open_database
from colony.testing import NodeServer, Reply, ScriptedModelServer

EXAMPLES = Path(__file__).resolve().parents[1] / "cartridges" / "examples"


@pytest.fixture(scope="session")
def wasm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cartridge-wasm-cache")


@pytest.fixture(autouse=True)
def _shared_cache(wasm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # python.wasm is compiled once per session into this directory, not once per test.
    monkeypatch.setenv("COLONY_SANDBOX_CACHE_DIR", str(wasm_cache))


@pytest.fixture
def db() -> Iterator[Database]:
    database = open_database(Settings().db_path)
    yield database
    database.close()


@pytest.fixture
def svc(db: Database) -> Cartridges:
    return Cartridges(db, Settings())


def deploy_example(svc: Cartridges, slug: str, name: str, **kw: object) -> int:
    lang = "python" if name.endswith(".py") else "wat"
    return svc.deploy(slug, (EXAMPLES / name).read_text(), lang=lang, **kw)  # type: ignore[arg-type]


def call(svc: Cartridges, slug: str, method: str = "GET", path: str = "/", body: str = "") -> tuple[int, str]:
    outcome = svc.call(slug, CartridgeRequest(method=method, path=path, body=body))
    return outcome.response.status, outcome.response.body


def test_counter_persists_its_kv_between_calls_and_services(svc: Cartridges, db: Database) -> None:
    assert deploy_example(svc, "counter", "counter.wat") == 1
    assert [call(svc, "counter")[1] for _ in range(3)] == ["1", "2", "3"]
    again = Cartridges(db, Settings())  # a new service (e.g. another process) sees the same KV
    assert call(again, "counter") == (200, "4")
    assert svc.kv("counter") == {"count": "\x04\x00\x00\x00"}
    row = db.one("SELECT calls, errors FROM cartridge_versions WHERE slug = 'counter' AND version = 1")
    assert row == {"calls": 4, "errors": 0}


def test_python_cartridges_json_and_notes(svc: Cartridges) -> None:
    deploy_example(svc, "json-transform", "json_transform.py")
    status, body = call(svc, "json-transform", "POST", "/", json.dumps({"name": "ada", "langs": ["py"]}))
    assert status == 200 and json.loads(body) == {"data": {"name": "ADA", "langs": ["PY"]}, "keys": 2}
    assert call(svc, "json-transform", "POST", "/", "{not json")[0] == 400
    deploy_example(svc, "notes", "notes.py")
    assert call(svc, "notes", "PUT", "/todo", "buy milk")[0] == 201
    assert json.loads(call(svc, "notes", "GET", "/todo")[1]) == {"name": "todo", "text": "buy milk"}
    assert json.loads(call(svc, "notes")[1]) == {"notes": ["todo"]}
    assert call(svc, "notes", "DELETE", "/todo")[0] == 200
    assert call(svc, "notes", "GET", "/todo")[0] == 404
    assert svc.kv("notes") == {}
    assert any("stored todo" in r["message"] for r in svc.logs("notes"))


def test_composition_and_recursion_depth(svc: Cartridges) -> None:
    deploy_example(svc, "counter", "counter.wat")
    deploy_example(svc, "caller", "caller.wat")
    assert call(svc, "caller") == (200, "counter says 1")
    assert svc.kv("caller") == {} and svc.kv("counter") == {"count": "\x01\x00\x00\x00"}
    deploy_example(svc, "recursive", "recursive.wat")
    status, body = call(svc, "recursive")
    assert status == 200 and body == "<" * MAX_DEPTH  # the fourth level was refused
    svc.remove("counter")
    assert call(svc, "caller")[0] == 502  # the callee is gone: -3, and the caller answers 502


def test_hot_swap_manual_and_automatic_rollback(svc: Cartridges, db: Database) -> None:
    good = 'def handle(request, kv, log):\n    return "v1"\n'
    bad = 'def handle(request, kv, log):\n    raise RuntimeError("broken")\n'
    svc.settings = Settings(cartridge_rollback_min_calls=3, cartridge_rollback_error_rate=0.5)
    assert svc.deploy("swap", good, lang="python") == 1
    assert call(svc, "swap") == (200, "v1")
    assert svc.deploy("swap", bad, lang="python") == 2
    outcomes = [svc.call("swap", CartridgeRequest()) for _ in range(3)]
    assert [o.ok for o in outcomes] == [False, False, False]
    assert outcomes[-1].rolled_back_to == 1
    assert call(svc, "swap") == (200, "v1")
    assert [(v["version"], v["status"]) for v in svc.versions("swap")] == [(1, "active"), (2, "rolled_back")]
    assert any("automatic: error rate 3/3" in r["message"] for r in svc.logs("swap"))
    assert svc.deploy("swap", 'def handle(request, kv, log):\n    return "v3"\n', lang="python") == 3
    assert svc.rollback("swap") == 1 and call(svc, "swap") == (200, "v1")
    assert svc.rollback("swap", 3) == 3 and call(svc, "swap") == (200, "v3")


def test_fitness_drop_rolls_back(svc: Cartridges) -> None:
    svc.deploy("fit", 'def handle(request, kv, log):\n    return "a"\n', lang="python")
    svc.record_fitness("fit", 1, 0.8)
    svc.deploy("fit", 'def handle(request, kv, log):\n    return "b"\n', lang="python")
    assert svc.record_fitness("fit", 2, 0.78) is None  # within the allowed drop
    assert svc.record_fitness("fit", 2, 0.5) == 1


def test_deploy_validates_before_swapping(svc: Cartridges) -> None:
    deploy_example(svc, "hello", "hello.wat")
    for source, lang, match in [
        ("(module (func", "wat", "does not compile"),
        ('(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))'
         ' (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0))'
         ' (func (export "handle") (param i32 i32) (result i64) (i64.const 0)))', "wat", "imports wasi"),
        ('(module (memory (export "memory") 1))', "wat", "missing: alloc, handle"),
        ("def handle(:\n", "python", "does not parse"),
        ("x = 1\n", "python", "must define handle"),
    ]:
        with pytest.raises(CartridgeError, match=match):
            svc.deploy("hello", source, lang=lang)  # type: ignore[arg-type]
    assert [v["version"] for v in svc.versions("hello")] == [1]
    with pytest.raises(CartridgeError, match="not a valid slug"):
        svc.deploy("Bad Slug", "def handle(r, kv, log):\n    return ''\n", lang="python")
    with pytest.raises(CartridgeError, match="No cartridge"):
        svc.call("missing", CartridgeRequest())


def test_hostile_cartridges_are_stopped(svc: Cartridges) -> None:
    spin = ('(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0))'
            ' (func (export "handle") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0)))')
    svc.settings = Settings(cartridge_timeout_s=0.5)
    svc.limits = svc.limits.model_copy(update={"timeout_s": 0.5})
    svc.deploy("spin", spin, lang="wat")
    outcome = svc.call("spin", CartridgeRequest())
    assert outcome.stop in ("timeout", "out_of_fuel") and outcome.response.status == 504
    huge = ('(module (memory (export "memory") 1700) (func (export "alloc") (param i32) (result i32) (i32.const 0))'
            ' (func (export "handle") (param i32 i32) (result i64) (i64.const 104857600)))')
    svc.deploy("huge", huge, lang="wat")
    outcome = svc.call("huge", CartridgeRequest())
    assert outcome.stop in ("denied", "out_of_memory") and outcome.response.status >= 500
    assert len(outcome.response.body) < 1000
    svc.deploy("huge-py", "def handle(request, kv, log):\n    return 'x' * (100 << 20)\n", lang="python")
    outcome = svc.call("huge-py", CartridgeRequest())
    assert not outcome.ok and len(outcome.response.body) < 1000
    svc.deploy("sneaky", "def handle(request, kv, log):\n    import os\n    os.system('id')\n", lang="python")
    outcome = svc.call("sneaky", CartridgeRequest())
    assert outcome.stop == "denied"


def test_cognitive_cartridge_implements_an_interface(svc: Cartridges) -> None:
    with pytest.raises(CartridgeError, match="names the interface"):
        deploy_example(svc, "rerank", "rerank.py", kind="cognitive")
    deploy_example(svc, "rerank", "rerank.py", kind="cognitive", interface="memory.rerank")
    items = [{"id": 1, "text": "the cat sat", "score": 0.9}, {"id": 2, "text": "python sandbox wasm", "score": 0.1}]
    status, body = call(svc, "rerank", "POST", "/", json.dumps({"query": "wasm sandbox", "items": items}))
    assert status == 200 and json.loads(body) == {"order": [2, 1]}
    assert svc.all()[0]["interface"] == "memory.rerank"


def test_removing_a_cartridge_deletes_its_kv_and_logs(svc: Cartridges, db: Database) -> None:
    deploy_example(svc, "counter", "counter.wat")
    call(svc, "counter")
    assert svc.remove("counter") and not svc.remove("counter")
    for table in ("cartridges", "cartridge_versions", "cartridge_kv", "cartridge_logs"):
        assert db.scalar(f"SELECT COUNT(*) FROM {table}") == 0


def test_served_at_c_slug_with_the_token(model: ScriptedModelServer) -> None:
    settings = Settings()
    with NodeServer(settings) as node, httpx.Client(base_url=node.base_url, timeout=30) as client:
        db = open_database(settings.db_path)
        try:
            deploy_example(Cartridges(db, settings), "counter", "counter.wat")
            deploy_example(Cartridges(db, settings), "notes", "notes.py")
        finally:
            db.close()
        assert client.get("/c/counter").status_code == 401
        r = client.get("/c/counter", headers=node.auth)
        assert (r.status_code, r.text, r.headers["x-cartridge-version"]) == (200, "1", "1")
        assert r.headers["content-type"].startswith("text/plain")
        # Agent-written code never runs as the node's origin: an opaque sandbox, no framing, no sniffing.
        csp = r.headers["content-security-policy"]
        assert csp.startswith("sandbox allow-scripts allow-forms;") and "allow-same-origin" not in csp
        assert "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert client.get("/c/counter", headers=node.auth).text == "2"
        r = client.put("/c/notes/todo", content="milk", headers=node.auth)
        assert r.status_code == 201 and r.json() == {"stored": "todo"}
        assert client.get("/c/notes/todo", headers=node.auth).json() == {"name": "todo", "text": "milk"}
        assert client.get("/c/nothing", headers=node.auth).status_code == 404


HEADER_GRABBER = """
def handle(request, kv, log):
    return {"status": 200, "body": "<p>hi</p>", "headers": {
        "Content-Type": "text/html", "Set-Cookie": "colony_session=planted; Path=/", "Clear-Site-Data": '"*"',
        "Content-Security-Policy": "default-src *", "Access-Control-Allow-Origin": "*",
        "Service-Worker-Allowed": "/", "X-Frame-Options": "ALLOWALL", "X-Kept": "yes", "X-Bad": "a\\r\\nInjected: 1",
    }}
"""


def test_a_cartridge_cannot_set_headers_that_act_on_the_nodes_origin(model: ScriptedModelServer) -> None:
    settings = Settings()
    with NodeServer(settings) as node, httpx.Client(base_url=node.base_url, timeout=30) as client:
        db = open_database(settings.db_path)
        try:
            Cartridges(db, settings).deploy("grabby", HEADER_GRABBER, lang="python")
        finally:
            db.close()
        r = client.get("/c/grabby", headers=node.auth)
        assert r.status_code == 200 and r.text == "<p>hi</p>" and r.headers["content-type"].startswith("text/html")
        assert r.headers["x-kept"] == "yes"
        for name in ("set-cookie", "clear-site-data", "access-control-allow-origin", "service-worker-allowed",
                     "x-bad", "injected"):
            assert name not in r.headers, name
        assert r.headers["content-security-policy"].startswith("sandbox ") and r.headers["x-frame-options"] == "DENY"


def test_cli_new_deploy_call_list_logs_rollback_rm(tmp_path: Path) -> None:
    runner = CliRunner()  # the suite's autouse fixture already runs each test in its tmp_path
    r = runner.invoke(app, ["cartridge", "new", "greeter"])
    assert r.exit_code == 0 and (tmp_path / "greeter.py").exists()
    assert runner.invoke(app, ["cartridge", "deploy", "greeter", "greeter.py"]).exit_code == 0
    r = runner.invoke(app, ["cartridge", "call", "greeter", "--path", "/x"])
    assert r.exit_code == 0 and json.loads(r.stdout) == {"hello": "/x", "calls": 1}
    r = runner.invoke(app, ["cartridge", "deploy", "greeter", str(EXAMPLES / "counter.wat"), "--note", "swap"])
    assert r.exit_code == 0 and "version 2" in r.stdout
    assert runner.invoke(app, ["cartridge", "call", "greeter"]).stdout.strip() == "1"
    rows = json.loads(runner.invoke(app, ["cartridge", "list", "--json"]).stdout)
    assert [(x["slug"], x["active_version"], x["versions"]) for x in rows] == [("greeter", 2, 2)]
    assert runner.invoke(app, ["cartridge", "rollback", "greeter"]).exit_code == 0
    logs = json.loads(runner.invoke(app, ["cartridge", "logs", "greeter", "--json"]).stdout)
    assert "rolled back from 2 to 1 (manual)" in logs[-1]["message"]
    assert runner.invoke(app, ["cartridge", "rm", "greeter"]).exit_code == 0
    r = runner.invoke(app, ["cartridge", "call", "greeter"])
    assert r.exit_code == 1 and "No cartridge" in r.stderr


async def test_agent_tools_test_freely_and_deploy_with_approval(model: ScriptedModelServer, workspace: Path) -> None:
    from colony.node import Node
    from colony.tools.approval import ApprovalRequest, Decision

    asked: list[str] = []

    async def approver(req: ApprovalRequest) -> Decision:
        asked.append(req.tool)
        return "approved"

    (workspace / "hi.py").write_text('def handle(request, kv, log):\n    return "hi " + request["path"]\n')
    model.set_script([
        Reply.tool_calls([("cartridge_test", {"path": "hi.py", "request_path": "/t"})]),
        Reply.tool_calls([("cartridge_deploy", {"slug": "hi", "path": "hi.py"})]),
        Reply.text("Deployed."),
    ])
    node = Node(Settings(), approver=approver)
    try:
        from colony.agent.loop import run_turn

        events = [e async for e in run_turn(await node.agent(), node.deps, "make a hi cartridge")]
        results = [e for e in events if type(e).__name__ == "ToolCallFinished"]
        assert '"body": "hi /t"' in str(results[0]) and "version 1 is live" in str(results[1])
        assert asked == ["cartridge_deploy"]  # the dry run needed no approval; the deploy did
        assert call(node.cartridges, "hi", path="/x") == (200, "hi /x")
    finally:
        await node.aclose()


def test_cognitive_cartridge_replaces_the_substrates_ranking_step(svc: Cartridges, db: Database) -> None:
    from colony.cartridges.cognitive import CartridgeRecall, install, install_all
    from colony.cognition import build_substrate
    from colony.memory import MemoryIn, open_memory

    settings = Settings(memory_embedder="none")
    memory = open_memory(db, settings)
    memory.ingest([MemoryIn(content="Ada Lovelace wrote the first program for the Analytical Engine."),
                   MemoryIn(content="Ada Lovelace worked with Charles Babbage on the engines."),
                   MemoryIn(content="Charles Babbage designed the Difference Engine.")])
    substrate = build_substrate(db, settings, memory=lambda: memory)
    query = "What did Ada Lovelace do?"
    builtin = [h[0] for h in substrate.graph.recall(query)]
    # The graph follows what the memories name: Ada's collaborator and what he designed (a memory
    # that only names Ada may or may not be on a path).
    assert {2, 3} <= set(builtin) <= {1, 2, 3}
    deploy_example(svc, "counter", "counter.wat")
    with pytest.raises(CartridgeError, match="cognitive cartridge must implement"):
        install(substrate, svc, "counter")
    deploy_example(svc, "rerank", "rerank.py", kind="cognitive", interface="memory.rerank")
    adapter = install(substrate, svc, "rerank")
    assert substrate.graph is adapter and isinstance(adapter, CartridgeRecall)
    ranked = [h[0] for h in substrate.graph.recall(query)]
    ada = [m for m in builtin if m in (1, 2)]
    assert sorted(ranked) == sorted(builtin)  # a permutation of the module's own answer
    assert set(ranked[:len(ada)]) == set(ada) and ranked[-1] == 3  # Ada's memories first: they share the query's words
    assert adapter.status()["reranked"] == 1
    # a broken version: the module falls back to its own order and the failure is counted
    svc.deploy("rerank", "def handle(request, kv, log):\n    return {'body': {'order': [99]}}\n", lang="python",
               kind="cognitive", interface="memory.rerank")
    assert [h[0] for h in substrate.graph.recall(query)] == builtin
    assert adapter.fallbacks == 1 and "not a permutation" in (adapter.last_error or "")
    assert db.one("SELECT calls, errors FROM cartridge_versions WHERE slug = 'rerank' AND version = 2") == {
        "calls": 1, "errors": 1}
    assert install(substrate, svc, "rerank").inner is adapter.inner  # re-installing never stacks adapters
    fresh = build_substrate(db, settings, memory=lambda: memory)
    assert install_all(fresh, svc) == ["rerank"] and isinstance(fresh.graph, CartridgeRecall)


def test_a_node_with_cognition_installs_deployed_cognitive_cartridges_at_start(
    svc: Cartridges, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: a deployed cognitive cartridge was only installed by explicit calls, so after a
    # restart the substrate ran its built-in module again.
    from colony.cartridges.cognitive import CartridgeRecall
    from colony.node import Node

    deploy_example(svc, "rerank", "rerank.py", kind="cognitive", interface="memory.rerank")
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    off = Node(Settings())
    assert off.cognition is None
    monkeypatch.setenv("COLONY_COGNITION_ENABLED", "true")
    node = Node(Settings())
    try:
        assert node.cognition is not None and isinstance(node.cognition.graph, CartridgeRecall)
    finally:
        asyncio.run(node.aclose())
        asyncio.run(off.aclose())
