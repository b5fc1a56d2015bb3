"""PostgreSQL as a node's store: the private server, migrations, the setting, the wiring, doctor,
and idle workers woken by NOTIFY instead of polling.

The task store's behaviour itself is in tests/contract (the same suite on SQLite and PostgreSQL);
the many-nodes kill test is tests/test_tasks_pg_nodes.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from colony.cli import app as cli_app
from colony.cli.doctor import run_checks
from colony.config import Settings
from colony.errors import SchemaTooNewError, StoreError
from colony.node import Node
from colony.store.pg import PG_MIGRATIONS, PgDatabase, PgMigration, applied_versions, migrate_pg, open_pg
from colony.store.pg.embedded import EmbeddedPostgres, find_binaries
from colony.store.pg.shared import is_open
from colony.tasks import TaskSpec
from colony.tasks.autonomy import WakesWorkers, open_store, run_daemon
from colony.tasks.pg_store import PgTaskStore
from colony.testing import FunctionModel, Reply, ScriptedModelServer


def test_the_private_server_runs_as_postgres_on_loopback_with_pgvector_and_stops_by_pid() -> None:
    assert find_binaries() is not None
    with EmbeddedPostgres() as server:
        assert server.pid is not None and server.dir is not None
        folder, pid = server.dir, server.pid
        with psycopg.connect(server.url) as conn:
            row = conn.execute("SELECT current_setting('listen_addresses'), "
                               "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                               "current_setting('unix_socket_directories')").fetchone()
        assert row is not None and row[0] == "127.0.0.1" and row[1] and row[2] == str(folder)
        if os.geteuid() == 0:  # PostgreSQL refuses root: the server runs as the postgres user
            assert Path(f"/proc/{pid}").stat().st_uid != 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not folder.exists()


def test_migrations_are_recorded_idempotent_and_refuse_a_newer_schema(pg_url: str) -> None:
    db = PgDatabase(pg_url)
    try:
        assert applied_versions(db) == []
        latest = max(m.version for m in PG_MIGRATIONS)
        assert migrate_pg(db) == latest and applied_versions(db) == sorted(m.version for m in PG_MIGRATIONS)
        assert migrate_pg(db) == latest  # nothing left to do
        names = {r["name"] for r in db.query("SELECT name FROM schema_migrations")}
        assert names == {m.name for m in PG_MIGRATIONS}
        db.execute("INSERT INTO schema_migrations(version, name) VALUES (99, 'from the future')")
        with pytest.raises(SchemaTooNewError, match="newer Colony"):
            migrate_pg(db)
        with pytest.raises(StoreError, match="used twice"):
            migrate_pg(db, [PG_MIGRATIONS[0], PG_MIGRATIONS[0]])
    finally:
        db.close()


def test_nodes_starting_together_migrate_once(pg_url: str) -> None:
    slow = PgMigration(3, "tasks, slowly", "SELECT pg_sleep(0.3); " + PG_MIGRATIONS[0].sql)
    errors: list[BaseException] = []

    def start() -> None:
        db = PgDatabase(pg_url, max_size=1)
        try:
            migrate_pg(db, [slow])
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (1,)


def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        PgDatabase("postgresql://colony:hunter2-secret@127.0.0.1:9/colony")
    message = str(info.value)
    assert "127.0.0.1:9/colony" in message and "COLONY_DATABASE_URL" in message and "hunter2" not in message


def test_the_setting_takes_postgresql_urls_only_and_keeps_them_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().database_url is None  # SQLite stays the default
    monkeypatch.setenv("COLONY_DATABASE_URL", "postgresql://u:Hunter2-Secret@db.example/colony")
    settings = Settings()
    assert settings.database_url is not None and "Hunter2" not in repr(settings)
    monkeypatch.setenv("COLONY_DATABASE_URL", "mysql://u:pw@db/colony")
    with pytest.raises(ValidationError, match="postgresql://"):
        Settings()


async def test_a_node_with_a_database_url_keeps_its_tasks_on_postgresql(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    node = Node(Settings())
    try:
        store = open_store(node)
        assert isinstance(store, PgTaskStore) and isinstance(store, WakesWorkers)
        task = store.post(TaskSpec(goal="on postgres"))
        assert node.db.scalar("SELECT count(*) FROM tasks") == 0  # not in the node's SQLite file
        assert [t.id for t in open_store(node).list_tasks()] == [task.id]
    finally:
        await node.aclose()
    assert not is_open(node.settings)  # the node's pool is closed with it


async def test_an_idle_worker_wakes_on_notify_not_at_its_next_poll(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLONY_MEMORY_RECORD_EPISODES", "false")
    monkeypatch.setenv("COLONY_AUTONOMY_INTERVAL_S", "30")  # a poll would take 30 s
    node = Node(Settings())
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(node, stop, worker="idle", model=FunctionModel(lambda m, i: "done")))
    other = PgTaskStore(open_pg(pg_url))  # another node's connection posts
    try:
        await asyncio.sleep(1.0)  # the worker found nothing and sleeps in LISTEN
        posted = time.monotonic()
        task = other.post(TaskSpec(goal="wake up"))
        while other.get(task.id).state != "completed":
            assert time.monotonic() - posted < 10, "the idle worker was not woken"
            await asyncio.sleep(0.02)
        assert time.monotonic() - posted < 3.0
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 10)
        await node.aclose()
        other.db.close()


def test_a_retry_wakes_a_waiting_worker_when_its_backoff_ends(pg_url: str) -> None:
    store = PgTaskStore(open_pg(pg_url), backoff_base_s=0.4)
    try:
        store.post(TaskSpec(goal="flaky"))
        assert store.wait_for_work(0.1)  # the first wait starts listening and asks to look again
        lease = store.claim("w", 10)
        assert lease is not None
        store.fail(lease, "try later")
        started = time.monotonic()
        store.wait_for_work(0.01)  # drain the NOTIFY of the requeue itself
        store.wait_for_work(5.0)
        assert 0.2 < time.monotonic() - started < 2.0  # cut short at the backoff's end, not 5 s
        assert store.claim("w", 10) is not None
    finally:
        store.db.close()


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli_app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_cli_adds_and_lists_tasks_on_postgresql(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    added = json.loads(_cli("tasks", "add", "summarise the logs", "--json"))
    listed = json.loads(_cli("tasks", "list", "--json"))
    assert [t["id"] for t in listed["tasks"]] == [added["id"]]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT goal FROM tasks").fetchall() == [("summarise the logs",)]


def test_doctor_checks_the_connection_pgvector_and_the_schema(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    fresh = {c.name: c for c in run_checks(Settings())}
    assert fresh["postgresql"].status == "ok" and "PostgreSQL 18" in fresh["postgresql"].detail
    assert fresh["pgvector"].status == "ok"
    versions = sorted(m.version for m in PG_MIGRATIONS)
    assert fresh["postgresql schema"].status == "warn" and str(versions) in fresh["postgresql schema"].detail
    open_pg(pg_url).close()
    migrated = {c.name: c for c in run_checks(Settings())}
    assert migrated["postgresql schema"].status == "ok" and f"schema {versions[-1]}" in migrated["postgresql schema"].detail
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP EXTENSION vector CASCADE")  # memory's halfvec column goes with it
        conn.execute("INSERT INTO schema_migrations(version, name) VALUES (42, 'newer')")
    later = {c.name: c for c in run_checks(Settings())}
    assert later["pgvector"].status == "warn" and "CREATE EXTENSION vector" in later["pgvector"].detail
    assert later["postgresql schema"].status == "fail" and "newer Colony" in later["postgresql schema"].detail
    monkeypatch.setenv("COLONY_DATABASE_URL", "postgresql://colony:pw@127.0.0.1:9/colony")
    down = {c.name: c for c in run_checks(Settings())}
    assert down["postgresql"].status == "fail" and down["postgresql"].required


@pytest.mark.parametrize("module", ["colony.store.pg", "colony.store.pg.migrations", "colony.store.pg.embedded",
                                    "colony.store.pg.tasks_schema", "colony.tasks.pg_store"])
def test_every_postgresql_module_exports_what_it_names(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert mod.__all__ and all(getattr(mod, name) is not None for name in mod.__all__)


def test_a_node_serves_and_works_its_tasks_on_postgresql(pg_url: str, model: ScriptedModelServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`colony up` with COLONY_DATABASE_URL: the API posts to PostgreSQL, the in-process loop runs the task."""
    from fastapi.testclient import TestClient

    from colony.server import create_app
    from colony.server.turns import ApprovalBroker

    model.set_script([Reply.text("the workspace is empty")])
    for key, value in {"COLONY_DATABASE_URL": pg_url, "COLONY_AUTONOMY_ENABLED": "true",
                       "COLONY_AUTONOMY_INTERVAL_S": "30", "COLONY_MEMORY_EMBEDDER": "none"}.items():
        monkeypatch.setenv(key, value)
    token = "pg-node-token-0123456789"
    broker = ApprovalBroker()
    node = Node(Settings(), approver=broker)
    app = create_app(node, broker, token=token, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"}) as client:
        task = client.post("/api/v1/tasks", json={"goal": "Look at the workspace"}).json()
        deadline = time.monotonic() + 20  # the loop idles on LISTEN (a poll would take 30 s)
        while (state := client.get(f"/api/v1/tasks/{task['id']}").json()["task"]["state"]) != "completed":
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        listed = client.get("/api/v1/tasks").json()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT state, result FROM tasks WHERE id = %s", (task["id"],)).fetchone()
    assert row == ("completed", "the workspace is empty")
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]


def test_health_and_readiness_report_the_shared_database(pg_url: str, pg_server: EmbeddedPostgres,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from colony.server import create_app
    from colony.server.turns import ApprovalBroker
    from colony.store.pg import latest_pg_version

    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    broker = ApprovalBroker()
    app = create_app(Node(Settings(), approver=broker), broker, token="health-token-0123456789", connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        pg = client.get("/api/v1/health").json()["database"]["postgresql"]
        assert pg["ok"] is True and pg["schema_version"] == latest_pg_version()
        assert "@" not in pg["server"] and pg_url.rsplit("/", 1)[-1] in pg["server"]  # no user or password
        assert client.get("/api/v1/ready").status_code == 200
        pg_server.drop_database(pg_url.rsplit("/", 1)[-1])  # the shared database goes away under the node
        report = client.get("/api/v1/health").json()
        assert report["status"] == "degraded" and report["database"]["postgresql"]["ok"] is False
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
