"""A backup of a node whose shared data lives in PostgreSQL says what it leaves out.

`colony backup` copies the node's SQLite file (its node-local tables: keys, federation, web logins…);
the memory, tasks, ledger and market of a node with ``COLONY_DATABASE_URL`` live in PostgreSQL. The
backup used to report success and row counts of zero for them, as if it held everything.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from colony.config import Settings
from colony.node import Node
from colony.server import create_app
from colony.server.turns import ApprovalBroker
from colony.store.backup import list_backups
from test_backup import TOKEN, cli


def _start_and_stop(settings: Settings) -> None:
    """Open a node once (creating its SQLite file and, with a URL, migrating PostgreSQL) and close it."""
    node = Node(settings)
    node.records.create_session(title="on the node")
    asyncio.run(node.aclose())


def test_a_postgresql_node_backup_names_what_it_leaves_out(
        pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    settings = Settings()
    _start_and_stop(settings)

    made = cli("backup", str(tmp_path / "pg-node.db"), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["excludes"] == ["postgresql"]
    plain = cli("backup", str(tmp_path / "again.db"))
    assert plain.returncode == 0 and "pg_dump" in plain.stderr and "PostgreSQL" in plain.stderr
    assert [b.excludes for b in list_backups(settings.home)] == [["postgresql"], ["postgresql"]]

    restored = cli("restore", str(tmp_path / "pg-node.db"))
    assert restored.returncode == 0, restored.stderr
    assert "PostgreSQL database is unchanged" in restored.stderr

    app = create_app(Node(settings, approver=(broker := ApprovalBroker())), broker, token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.post("/api/v1/backup", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 201, r.text
        assert r.json()["backup"]["excludes"] == ["postgresql"]


def test_a_sqlite_node_backup_leaves_nothing_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    _start_and_stop(Settings())
    made = cli("backup", str(tmp_path / "local.db"), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["excludes"] == []
    assert "pg_dump" not in cli("backup", str(tmp_path / "again.db")).stderr
