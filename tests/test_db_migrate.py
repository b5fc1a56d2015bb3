"""`colony db migrate --to`: a node's SQLite data copied into PostgreSQL, checked, all or nothing.

Real engines on both sides: the node's SQLite file and the suite's private PostgreSQL (`pg_url`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from colony.cli import app as cli_app
from colony.config import Settings
from colony.store import open_database
from colony.store.pg import open_pg
from colony.store.pg.copy import convert, sqlite_tables, target_tables
from colony.tasks.models import TaskSpec
from colony.tasks.pg_store import PgTaskStore
from colony.tasks.store import SqliteTaskStore

pytestmark = pytest.mark.usefixtures("quiet")


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    monkeypatch.setenv("COLUMNS", "200")


def cli(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), catch_exceptions=False)


def _fill_tasks(settings: Settings) -> dict[str, str]:
    """Tasks in several states, a subtask, a dependency, usage: what a node that has worked holds."""
    db = open_database(settings.db_path)
    try:
        store = SqliteTaskStore(db)
        parent = store.post(TaskSpec(goal="parent ✓ 'quoted'; DROP TABLE tasks;--", priority=5, skills=["py"]))
        child = store.post(TaskSpec(goal="child", parent_id=parent.id))
        later = store.post(TaskSpec(goal="after the child", depends_on=[child.id]))
        done = store.post(TaskSpec(goal="done one", budget={"credits": 250000}))
        failed = store.post(TaskSpec(goal="failing one", max_attempts=1))
        for _ in range(5):
            lease = store.claim("w1", 30.0, skills=["py"])
            assert lease is not None
            if lease.task_id == done.id:
                store.record_usage(lease, tokens=42, tool_calls=2)
                store.complete(lease, "result ✓")
            elif lease.task_id == failed.id:
                store.fail(lease, "boom", retry=False)
            else:
                store.release(lease, "not now")
                break
        cancelled = store.post(TaskSpec(goal="cancel me"))
        store.cancel(cancelled.id)
        return {t.id: t.state for t in store.list_tasks(limit=1000)} | {"_later": later.id}
    finally:
        db.close()


def test_a_node_s_tasks_move_to_postgresql_with_their_history_and_order(pg_url: str) -> None:
    settings = Settings()
    states = _fill_tasks(settings)
    later = states.pop("_later")
    db = open_database(settings.db_path)
    sqlite_store = SqliteTaskStore(db)
    before_events = {tid: [(e.from_state, e.to_state, e.actor) for e in sqlite_store.events(tid)] for tid in states}
    before_order = [t.id for t in sqlite_store.list_tasks(limit=1000)]
    db.close()

    result = cli("db", "migrate", "--to", pg_url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    copied = {t["table"]: t["rows"] for t in report["copied"]}
    assert copied["tasks"] == len(states) and copied["task_events"] == sum(map(len, before_events.values()))

    pg = open_pg(pg_url)
    try:
        store = PgTaskStore(pg)
        assert {t.id: t.state for t in store.list_tasks(limit=1000)} == states
        assert [t.id for t in store.list_tasks(limit=1000)] == before_order  # newest first, as on SQLite
        for tid, events in before_events.items():
            assert [(e.from_state, e.to_state, e.actor) for e in store.events(tid)] == events
        assert store.get(later).waiting_on == 1  # the dependency came along
        # The copy is a working queue: a new task gets a later seq than every copied one.
        new = store.post(TaskSpec(goal="posted after the move"))
        unprioritised = [t.id for t in store.list_tasks(limit=1000) if t.priority == 0]
        assert unprioritised[0] == new.id
    finally:
        pg.close()
    # The SQLite file is unchanged.
    db = open_database(settings.db_path)
    try:
        assert {t.id: t.state for t in SqliteTaskStore(db).list_tasks(limit=1000)} == states
    finally:
        db.close()


def test_every_table_postgresql_holds_is_copied_with_its_row_count(pg_url: str) -> None:
    settings = Settings()
    _fill_tasks(settings)
    assert cli("db", "migrate", "--to", pg_url).exit_code == 0
    db = open_database(settings.db_path)
    pg = open_pg(pg_url)
    try:
        shared = set(sqlite_tables(db)) & set(target_tables(pg))
        assert {"tasks", "task_events"} <= shared
        for table in shared:
            assert pg.scalar(f'SELECT count(*) FROM "{table}"') == db.scalar(f'SELECT count(*) FROM "{table}"'), table
    finally:
        pg.close()
        db.close()


def test_a_target_that_holds_data_is_refused_and_left_as_it_was(pg_url: str) -> None:
    settings = Settings()
    _fill_tasks(settings)
    assert cli("db", "migrate", "--to", pg_url).exit_code == 0
    pg = open_pg(pg_url)
    try:
        count = pg.scalar("SELECT count(*) FROM tasks")
        again = cli("db", "migrate", "--to", pg_url)
        assert again.exit_code == 4
        assert "already holds data" in again.stderr and "tasks" in again.stderr
        assert pg.scalar("SELECT count(*) FROM tasks") == count
    finally:
        pg.close()


def test_bad_targets_say_how_to_fix_them(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong_scheme = cli("db", "migrate", "--to", "mysql://u:p@h/db")
    assert wrong_scheme.exit_code == 2 and "postgresql://" in wrong_scheme.stderr
    no_target = cli("db", "migrate")
    assert no_target.exit_code == 2 and "COLONY_DATABASE_URL" in no_target.stderr
    unreachable = cli("db", "migrate", "--to", "postgresql://colony:Sup3rSecret@127.0.0.1:1/colony")
    assert unreachable.exit_code == 4 and "Cannot reach PostgreSQL" in unreachable.stderr
    assert "Sup3rSecret" not in unreachable.output  # the password never reaches the terminal
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)  # the default target is the configured one
    assert cli("db", "migrate", "--json").exit_code == 0


def test_a_running_node_is_refused_because_its_later_writes_would_be_lost(pg_url: str, tmp_path: Path) -> None:
    settings = Settings()
    _fill_tasks(settings)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom colony.store import open_database\n"
         "db = open_database(sys.argv[1]); db.scalar('SELECT 1'); print('open', flush=True); time.sleep(60)",
         str(settings.db_path)], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = cli("db", "migrate", "--to", pg_url)
        assert result.exit_code == 5 and str(holder.pid) in result.stderr and "Stop it" in result.stderr
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    pg = open_pg(pg_url)
    try:
        assert pg.scalar("SELECT count(*) FROM tasks") == 0
    finally:
        pg.close()


def test_a_copy_killed_half_way_leaves_the_target_empty_and_can_be_run_again(pg_url: str) -> None:
    settings = Settings()
    db = open_database(settings.db_path)
    try:
        SqliteTaskStore(db).post_many(TaskSpec(goal=f"task {i} " + "x" * 400) for i in range(60_000))
    finally:
        db.close()
    env = os.environ | {"COLONY_DATABASE_URL": pg_url}
    copying = subprocess.Popen([sys.executable, "-m", "colony", "db", "migrate"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pg = open_pg(pg_url)
    try:
        deadline = time.monotonic() + 60
        while not pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'colony-migrate' "
                            "AND query ILIKE 'COPY%%'"):
            assert copying.poll() is None, f"the copy ended before it was killed: {copying.stderr and copying.stderr.read()}"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        copying.send_signal(signal.SIGKILL)
        copying.wait()
        time.sleep(0.5)  # the server notices the dropped connection and rolls its transaction back
        assert pg.scalar("SELECT count(*) FROM tasks") == 0
        result = cli("db", "migrate", "--to", pg_url, "--json")
        assert result.exit_code == 0, result.output
        assert pg.scalar("SELECT count(*) FROM tasks") == 60_000
    finally:
        pg.close()
        if copying.poll() is None:
            copying.kill()
            copying.wait()
        if copying.stderr is not None:
            copying.stderr.close()


def test_values_are_converted_to_the_target_column_s_type() -> None:
    from colony.errors import StoreError

    assert convert(1, "bool", "t.c") is True and convert(0, "bool", "t.c") is False
    assert convert(250000.0, "int8", "t.c") == 250000
    with pytest.raises(StoreError, match="not a whole number"):
        convert(0.5, "int8", "t.budget")
    vec = convert(b"\x00\x00\x80\x3f\x00\x00\x00\xc0", "vector", "t.v")  # 1.0, -2.0 as float32
    assert vec == "[1.0,-2.0]"
    assert convert(b"\x00\x3c\x00\xc0", "halfvec", "t.v") == "[1.0,-2.0]"  # the same as float16
    with pytest.raises(StoreError, match="NaN"):
        convert(b"\x00\x00\xc0\x7f", "vector", "t.v")
    assert convert(0, "timestamptz", "t.c").year == 1970
    assert convert(None, "bool", "t.c") is None


def test_a_ledger_moves_verified_with_the_same_root_and_keeps_working(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from colony.identity import SchnorrKey
    from colony.ledger import Ledger, open_ledger_store
    from colony.ledger.pg_store import PgLedgerStore
    from colony.node import Node

    node = Node(Settings())
    node.keyring.ensure(announce=False)
    outsider = SchnorrKey.generate()
    try:
        assert cli("ledger", "mint", "colony", "100", "--reason", "initial allocation").exit_code == 0
        assert cli("wallet", "transfer", outsider.npub, "2.5", "--memo", "before the move").exit_code == 0
        sqlite_store = open_ledger_store(node.db, node.settings)
        root, supply = sqlite_store.root(), sqlite_store.supply()
    finally:
        asyncio.run(node.aclose())

    result = cli("db", "migrate", "--to", pg_url, "--json")
    assert result.exit_code == 0, result.output
    assert "verified" in json.loads(result.stdout)["ledger"]

    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    node = Node(Settings())
    try:
        store = open_ledger_store(node.db, node.settings)
        assert isinstance(store, PgLedgerStore) and store.root() == root and store.supply() == supply
        # The node keeps paying from the moved ledger: chains continue from the copied heads.
        ledger = Ledger(store, node.keyring.node().schnorr_key)
        assert cli("wallet", "transfer", outsider.npub, "1", "--memo", "after the move").exit_code == 0
        assert store.account(outsider.public_hex) is not None
        assert store.account(outsider.public_hex).balance == 3_500_000  # type: ignore[union-attr]
        assert ledger.verify().ok
    finally:
        asyncio.run(node.aclose())


def test_memories_move_with_their_vectors_and_recall_the_same(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from colony.memory import open_memory
    from colony.memory.models import MemoryIn

    monkeypatch.delenv("COLONY_MEMORY_EMBEDDER", raising=False)  # the node's real embedding model
    settings = Settings()
    db = open_database(settings.db_path)
    facts = ["The deploy key lives in vault path secret/deploy.", "Mara moved the staging database to Lisbon.",
             "The invoice for ACME-4471 was paid on 3 March.", "Kestrel's build runs on the old Jenkins box."]
    try:
        memory = open_memory(db, settings)
        assert memory.embedder is not None
        memory.add_many([MemoryIn(content=f) for f in facts])
        question = "where do we keep the key used for deployments?"
        before = [(h.memory.id, h.memory.content) for h in memory.recall(question, k=3, touch=False).hits]
    finally:
        db.close()

    assert cli("db", "migrate", "--to", pg_url).exit_code == 0
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    on_pg = Settings()
    db = open_database(on_pg.db_path)
    try:
        memory = open_memory(db, on_pg)
        assert type(memory.store).__name__ == "PgMemoryStore"
        assert [(h.memory.id, h.memory.content) for h in memory.recall(question, k=3, touch=False).hits][:1] == before[:1]
        semantic = memory.recall(question, k=3, channels={"semantic"}, touch=False).hits
        assert semantic and semantic[0].memory.content == facts[0]  # the vectors came across intact
    finally:
        db.close()


def test_status_says_which_engine_holds_what(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from colony.store.migrations import latest_version
    from colony.store.pg import PG_MIGRATIONS

    _fill_tasks(Settings())
    alone = json.loads(cli("db", "status", "--json").stdout)
    assert alone["engine"] == "sqlite" and alone["postgresql"] is None
    assert alone["sqlite"]["schema_version"] == latest_version() == alone["sqlite"]["latest"]

    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    assert cli("db", "migrate", "--json").exit_code == 0
    shared = cli("db", "status", "--json")
    assert shared.exit_code == 0
    info = json.loads(shared.stdout)
    assert info["engine"] == "postgresql"
    assert info["postgresql"]["applied"] == sorted(m.version for m in PG_MIGRATIONS)
    assert {"tasks", "ledger_entries", "memories", "sessions", "market_auctions"} <= set(info["postgresql"]["tables"])
    assert "@" not in info["postgresql"]["server"]  # never the user or password
    text = cli("db", "status")
    assert text.exit_code == 0 and "engine: postgresql" in text.stdout
