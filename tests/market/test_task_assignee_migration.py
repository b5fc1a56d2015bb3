"""Migration 20 (issue 17): a task's assignee moves from the winning agent's name to its account.
A file at version 19, written as the code before 20 wrote it (the award named the winner), keeps
every task, with the auction's winner as the assignee of an awarded task, the agent's key for a
name of one of the node's agents, and a name nothing resolves kept as it was, which no worker
claims; on PostgreSQL (no identities there) the auctions convert and the rest is kept."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from colony.config import Settings
from colony.errors import StoreError
from colony.identity import Keyring, SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.store import Database
from colony.store.migrations import MIGRATIONS, migrate, schema_version
from colony.tasks.store import SqliteTaskStore

Run = Callable[[str, tuple[Any, ...]], Any]
REVEAL = 100
PRICE = 2 * MICRO


def _event(run: Run, mark: str, auction: str, kind: int, pubkey: str, at: int) -> str:
    """A stored market event as the market writes it (the raw JSON carries what the table checks)."""
    event_id = f"{kind:04d}{auction[4:]}"
    raw = json.dumps({"id": event_id, "kind": kind, "pubkey": pubkey, "created_at": at})
    run(f"INSERT INTO market_events(id, kind, auction, pubkey, created_at, received_at, raw) "
        f"VALUES ({', '.join([mark] * 7)})", (event_id, kind, auction, pubkey, at, at, raw))
    return event_id


def _tasks(run: Run, mark: str, assignees: dict[str, str | None]) -> None:
    for i, (task_id, assignee) in enumerate(assignees.items()):
        run(f"INSERT INTO tasks(id, goal, state, priority, assignee, created_at, updated_at) "
            f"VALUES ({', '.join([mark] * 7)})",
            (task_id, f"goal of {task_id}", "posted" if assignee is None else "assigned", i, assignee, 1.0, 2.0))


def _awarded_by_name(run: Run, mark: str, ledger: Ledger, poster: SchnorrKey, task_id: str, auction: str,
                     winner: str, winner_name: str) -> None:
    """An auction for ``task_id`` awarded to ``winner`` (named ``winner_name``), escrow held, as before 20."""
    announcement = _event(run, mark, auction, 7200, poster.public_hex, 1)
    run(f"INSERT INTO market_auctions(id, task_id, announcement, poster, poster_name, rule, reserve, bond, "
        f"commit_deadline, reveal_deadline, verification, verify_spec, verifier, state, created_at, updated_at) "
        f"VALUES ({', '.join([mark] * 16)})",
        (auction, task_id, announcement, poster.public_hex, "colony", "vickrey", 5 * MICRO, 0, REVEAL - 30, REVEAL,
         "approval", "{}", "cd" * 32, "open", 1.0, 1.0))
    award = _event(run, mark, auction, 7203, poster.public_hex, REVEAL + 1)
    hold = ledger.pay(poster, winner, PRICE, op="hold", memo="market escrow").transfer_id
    run(f"UPDATE market_auctions SET state = 'awarded', winner = {mark}, winner_name = {mark}, price = {mark}, "
        f"escrow_hold = {mark}, award_event = {mark} WHERE id = {mark}",
        (winner, winner_name, PRICE, hold, award, auction))


@pytest.fixture
def old_file(tmp_path: Path) -> Iterator[tuple[Database, Keyring]]:
    """A node's file at version 19: ada's awarded task, one assigned to bob by name, one to a ghost, one free."""
    settings = Settings()
    db = Database(settings.db_path)
    assert migrate(db, [m for m in MIGRATIONS if m.version <= 19]) == 19
    keyring = Keyring(db, settings)
    ada = keyring.create_agent("ada")
    keyring.create_agent("bob")
    ledger = Ledger(SqliteLedgerStore(db), keyring.node().schnorr_key)
    poster = keyring.schnorr_key("colony")
    ledger.mint(poster.public_hex, 100 * MICRO, "the poster's budget")
    _tasks(db.execute, "?", {"t-ada": "ada", "t-bob": "bob", "t-ghost": "ghost", "t-free": None})
    _awarded_by_name(db.execute, "?", ledger, poster, "t-ada", "ab" * 32, ada.public_hex, "ada")
    try:
        yield db, keyring
    finally:
        db.close()


def test_a_version_19_file_assigns_each_task_to_its_agents_account(old_file: tuple[Database, Keyring]) -> None:
    db, keyring = old_file
    ada, bob = keyring.agent("ada").public_hex, keyring.agent("bob").public_hex
    before = {r["id"]: r for r in db.query("SELECT * FROM tasks")}
    order = [r["id"] for r in db.query("SELECT id FROM tasks ORDER BY rowid")]

    assert migrate(db) >= 20 and schema_version(db) >= 20
    after = {r["id"]: r for r in db.query("SELECT * FROM tasks")}
    assert {tid: row["assignee"] for tid, row in after.items()} == {
        "t-ada": ada,  # the auction's winner
        "t-bob": bob,  # no auction: the node's agent of that name
        "t-ghost": "ghost",  # nothing names it: kept as it was
        "t-free": None}
    assert {tid: {**row, "assignee": None} for tid, row in after.items()} == {
        tid: {**row, "assignee": None} for tid, row in before.items()}  # nothing else changed
    assert [r["id"] for r in db.query("SELECT id FROM tasks ORDER BY rowid")] == order

    # The market's worker claims by its agents' accounts: ada's and bob's tasks; the ghost's is nobody's.
    store = SqliteTaskStore(db)
    claimed = [store.claim_assigned("w", 10, assignees=[ada, bob]) for _ in range(3)]
    assert [lease.task_id if lease else None for lease in claimed] == ["t-bob", "t-ada", None]  # by priority
    lease = store.claim("generic", 10)
    assert lease is not None and lease.task_id == "t-free" and store.claim("generic", 10) is None
    assert store.get("t-ghost").state == "assigned"

    # From now on an assignee is an account: a name is refused, a key accepted.
    with pytest.raises(StoreError, match="account"):
        db.execute("UPDATE tasks SET assignee = 'ada' WHERE id = 't-free'")
    db.execute("UPDATE tasks SET assignee = ? WHERE id = 't-free'", (bob,))
    with pytest.raises(StoreError, match="CHECK"):
        db.execute("UPDATE tasks SET assignee = ? WHERE id = 't-free'", ("x" * 64,))


def test_postgresql_assigns_awarded_tasks_to_their_winners_and_keeps_the_rest(pg_url: str) -> None:
    from colony.ledger.pg_store import PgLedgerStore
    from colony.store.pg import PgDatabase
    from colony.store.pg.migrations import PG_MIGRATIONS, migrate_pg

    pg = PgDatabase(pg_url)
    try:
        assert migrate_pg(pg, [m for m in PG_MIGRATIONS if m.version < 20]) == 19
        ledger = Ledger(PgLedgerStore(pg), SchnorrKey.generate())
        poster, ada_a, ada_b = SchnorrKey.generate(), SchnorrKey.generate(), SchnorrKey.generate()
        ledger.mint(poster.public_hex, 100 * MICRO, "the poster's budget")
        # Two nodes' "ada" each won an auction: by name their tasks were one agent's.
        _tasks(pg.execute, "%s", {"t-a": "ada", "t-b": "ada", "t-ghost": "ghost", "t-free": None})
        _awarded_by_name(pg.execute, "%s", ledger, poster, "t-a", "ab" * 32, ada_a.public_hex, "ada")
        _awarded_by_name(pg.execute, "%s", ledger, poster, "t-b", "ac" * 32, ada_b.public_hex, "ada")

        assert migrate_pg(pg) >= 20
        assert pg.query("SELECT id, assignee FROM tasks ORDER BY id") == [
            {"id": "t-a", "assignee": ada_a.public_hex}, {"id": "t-b", "assignee": ada_b.public_hex},
            {"id": "t-free", "assignee": None}, {"id": "t-ghost", "assignee": "ghost"}]
        with pytest.raises(StoreError, match="account"):
            pg.execute("UPDATE tasks SET assignee = 'ada' WHERE id = 't-free'")
        pg.execute("UPDATE tasks SET assignee = %s WHERE id = 't-free'", (ada_a.public_hex,))
        pg.execute("UPDATE tasks SET priority = 7 WHERE id = 't-ghost'")  # a kept name rides along other updates
    finally:
        pg.close()
