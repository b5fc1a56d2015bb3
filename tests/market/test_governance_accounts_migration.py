"""Migration 19 (issue 17): stake locks, stake keys and tool tiers move from the agent's name to its
account, and every row written before keeps its meaning. On SQLite (a node's file at version 18,
written as the code before 19 wrote it) every row converts through the node's identities; on
PostgreSQL (at version 14, where no identities live) a name that staked under one account converts
and the rows of a name two nodes shared are kept under the name, applying to nobody."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from colony.config import Settings
from colony.errors import StoreError
from colony.identity import Keyring, SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.market import gov_service as gov
from colony.market import stakes
from colony.store import Database
from colony.store.migrations import MIGRATIONS, migrate, schema_version

PROPOSAL = "ab" * 32


def _v18(path: Path) -> Database:
    db = Database(path)
    assert migrate(db, [m for m in MIGRATIONS if m.version <= 18]) == 18
    return db


def _executed_proposal(execute: object, mark: str) -> None:
    """A proposal and its execution as the governance code records them (the tiers name it)."""
    run = execute  # the engine's execute: ``?`` for SQLite, ``%s`` for psycopg
    assert callable(run)
    action = json.dumps({"type": "set_tool_tier", "agent": "ada", "tool": "save_note", "tier": "allow"})
    marks = ", ".join([mark] * 13)
    run(f"INSERT INTO gov_proposals(id, proposer, proposer_name, action_type, action, created_at, voting_ends, "
        f"executable_at, expires_at, quorum_bp, total_weight, event, recorded_at) VALUES ({marks})",
        (PROPOSAL, "cd" * 32, "node", "set_tool_tier", action, 1, 2, 3, 4, 2000, 0, "{}", 1.0))
    marks = ", ".join([mark] * 10)
    run(f"INSERT INTO gov_executions(proposal_id, outcome, yes, no, abstain, detail, created_at, event_id, event, "
        f"recorded_at) VALUES ({marks})", (PROPOSAL, "applied", 1, 0, 0, "set", 3, "ef" * 32, "{}", 3.0))


@pytest.fixture
def old_node(tmp_path: Path) -> Iterator[tuple[Database, Keyring]]:
    """A node's file at version 18 with ada's and bob's stake, keyed deposits, locks and tool tiers."""
    settings = Settings()
    db = _v18(settings.db_path)
    keyring = Keyring(db, settings)
    ada, bob = keyring.create_agent("ada"), keyring.create_agent("bob")
    ledger = Ledger(SqliteLedgerStore(db), keyring.node().schnorr_key)
    holds = {}
    for ident, amount in ((ada, 30 * MICRO), (bob, 10 * MICRO)):
        ledger.mint(ident.public_hex, 100 * MICRO, "funding")
        holds[ident.name] = ledger.pay(keyring.schnorr_key(ident.name), None, amount, op="hold",
                                       memo="stake").transfer_id
    for name, ident, amount, key in (("ada", ada, 30 * MICRO, "k-ada"), ("bob", bob, 10 * MICRO, None)):
        db.execute("INSERT INTO market_stake_holds(hold_id, agent, account, origin, created_at) "
                   "VALUES (?, ?, ?, 'deposit', 1.0)", (holds[name], name, ident.public_hex))
        db.execute("INSERT INTO market_stake_events(agent, account, op, amount, ref, beneficiary, reason, holds, "
                   "staked_after, actor, created_at) VALUES (?, ?, 'deposit', ?, ?, NULL, '', ?, ?, 'cli', 1.0)",
                   (name, ident.public_hex, amount, key, json.dumps([holds[name]]), amount))
    db.execute("INSERT INTO market_stake_locks(ref, agent, amount, created_at, released_at) VALUES "
               "('bid:1', 'ada', ?, 1.0, NULL), ('bid:2', 'bob', ?, 1.0, 2.0)", (20 * MICRO, 5 * MICRO))
    _executed_proposal(db.execute, "?")
    db.execute("INSERT INTO gov_tool_tiers(agent, tool, tier, proposal_id, updated_at) VALUES "
               "('ada', 'save_note', 'allow', ?, 3.0), ('bob', 'write_file', 'auto', ?, 3.0)", (PROPOSAL, PROPOSAL))
    try:
        yield db, keyring
    finally:
        db.close()


def _rows(db: Database, table: str, order: str) -> list[dict[str, object]]:
    return db.query(f"SELECT * FROM {table} ORDER BY {order}")


def test_a_version_18_file_keeps_every_row_under_its_agents_account(old_node: tuple[Database, Keyring]) -> None:
    db, keyring = old_node
    ada, bob = keyring.agent("ada").public_hex, keyring.agent("bob").public_hex
    holds, events = _rows(db, "market_stake_holds", "hold_id"), _rows(db, "market_stake_events", "id")
    locks = _rows(db, "market_stake_locks", "ref")

    assert migrate(db) >= 19 and schema_version(db) >= 19
    assert _rows(db, "market_stake_holds", "hold_id") == holds
    assert _rows(db, "market_stake_events", "id") == events  # ids and every column kept
    assert _rows(db, "market_stake_locks", "ref") == [{**lock, "account": {"ada": ada, "bob": bob}[lock["agent"]]}
                                                     for lock in locks]
    assert db.query("SELECT account, agent, tool, tier, proposal_id FROM gov_tool_tiers ORDER BY agent") == [
        {"account": ada, "agent": "ada", "tool": "save_note", "tier": "allow", "proposal_id": PROPOSAL},
        {"account": bob, "agent": "bob", "tool": "write_file", "tier": "auto", "proposal_id": PROPOSAL}]

    # The code reads them by account and finds what the names had.
    assert stakes.stake_view(keyring, "ada").model_dump(include={"staked", "locked", "free"}) == {
        "staked": 30 * MICRO, "locked": 20 * MICRO, "free": 10 * MICRO}
    assert (stakes.staked(keyring, "bob"), stakes.locked(keyring, "bob")) == (10 * MICRO, 0)  # bid:2 was released
    assert gov.agent_tool_tier(db, db, "ada", "save_note") == "allow"
    assert gov.agent_tool_tier(db, db, "bob", "write_file") == "auto"
    assert gov.agent_tool_tier(db, db, "bob", "save_note") is None
    # A keyed deposit made before is still found for its account; bob may now use the same key.
    stakes.deposit(keyring, "ada", 30 * MICRO, key="k-ada")
    assert stakes.staked(keyring, "ada") == 30 * MICRO
    stakes.deposit(keyring, "bob", MICRO, key="k-ada")
    assert stakes.staked(keyring, "bob") == 11 * MICRO
    assert stakes.unlock(keyring, "bid:1") and not stakes.unlock(keyring, "bid:1")
    assert stakes.locked(keyring, "ada") == 0

    # The invariants came along: a lock names its agent's own account and keeps it.
    with pytest.raises(StoreError, match="own account"):
        db.execute("INSERT INTO market_stake_locks(ref, agent, account, amount, created_at) "
                   "VALUES ('x', 'ada', ?, 1, 0)", (bob,))
    with pytest.raises(StoreError, match="released once"):
        db.execute("UPDATE market_stake_locks SET account = ? WHERE ref = 'bid:2'", (ada,))
    with pytest.raises(StoreError, match="audit record"):
        db.execute("UPDATE market_stake_events SET amount = 1")
    with pytest.raises(StoreError, match="own account"):
        db.execute("INSERT INTO gov_tool_tiers(account, agent, tool, tier, proposal_id, updated_at) "
                   "VALUES (?, 'ada', 'run_command', 'allow', ?, 0)", (bob, PROPOSAL))
    slash = ("INSERT INTO market_stake_events(agent, account, op, amount, ref, beneficiary, staked_after, actor, "
             "created_at) VALUES (?, ?, 'slash', 0, 'case:1', ?, 0, 'test', 0)")
    db.execute(slash, ("ada", ada, "00" * 32))
    with pytest.raises(StoreError, match="UNIQUE"):  # a slash's reference is still one offence, whoever's
        db.execute(slash, ("bob", bob, "00" * 32))


def test_migration_19_refuses_a_row_whose_agent_it_cannot_find(old_node: tuple[Database, Keyring]) -> None:
    db, _ = old_node
    conn = db.connection()
    conn.execute("PRAGMA foreign_keys=OFF")  # how such a row could have been written at all
    conn.execute("INSERT INTO market_stake_locks(ref, agent, amount, created_at) VALUES ('bid:ghost', 'ghost', 1, 0)")
    conn.execute("PRAGMA foreign_keys=ON")
    with pytest.raises(StoreError, match="bid:ghost") as refused:
        migrate(db)
    assert "ghost" in str(refused.value) and schema_version(db) == 18
    assert db.scalar("SELECT count(*) FROM market_stake_locks") == 3  # nothing changed


def test_postgresql_converts_what_one_account_staked_and_keeps_what_two_shared(pg_url: str) -> None:
    from colony.ledger.pg_store import PgLedgerStore
    from colony.market import _gov_store, _stake_store
    from colony.store.pg import PgDatabase
    from colony.store.pg.engine import PgEngine
    from colony.store.pg.migrations import PG_MIGRATIONS, migrate_pg

    pg = PgDatabase(pg_url)
    try:
        assert migrate_pg(pg, [m for m in PG_MIGRATIONS if m.version < 19]) == 14
        ledger = Ledger(PgLedgerStore(pg), SchnorrKey.generate())
        ada, colony_a, colony_b = SchnorrKey.generate(), SchnorrKey.generate(), SchnorrKey.generate()
        for name, key in (("ada", ada), ("colony", colony_a), ("colony", colony_b)):
            ledger.mint(key.public_hex, 100 * MICRO, "funding")
            hold = ledger.pay(key, None, 10 * MICRO, op="hold", memo="stake").transfer_id
            pg.execute("INSERT INTO market_stake_holds(hold_id, agent, account, origin, created_at) "
                       "VALUES (%s, %s, %s, 'deposit', 1.0)", (hold, name, key.public_hex))
        pg.execute("INSERT INTO market_stake_locks(ref, agent, amount, created_at, released_at) VALUES "
                   "('bid:ada', 'ada', 4, 1.0, NULL), ('bid:colony', 'colony', 3, 1.0, NULL)")
        _executed_proposal(pg.execute, "%s")
        pg.execute("INSERT INTO gov_tool_tiers(agent, tool, tier, proposal_id, updated_at) VALUES "
                   "('ada', 'save_note', 'allow', %s, 3.0), ('colony', 'save_note', 'allow', %s, 3.0), "
                   "('bob', 'save_note', 'allow', %s, 3.0)", (PROPOSAL, PROPOSAL, PROPOSAL))

        assert migrate_pg(pg) >= 19
        engine = PgEngine(pg)
        assert pg.query("SELECT ref, account FROM market_stake_locks ORDER BY ref") == [
            {"ref": "bid:ada", "account": ada.public_hex}, {"ref": "bid:colony", "account": None}]
        assert _stake_store.locked(engine, ada.public_hex) == 4
        assert [_stake_store.locked(engine, k.public_hex) for k in (colony_a, colony_b)] == [0, 0]
        assert _gov_store.tool_tier(engine, ada.public_hex, "save_note") == "allow"
        assert [_gov_store.tool_tier(engine, k.public_hex, "save_note") for k in (colony_a, colony_b)] == [None, None]
        assert pg.query("SELECT agent, tool, tier FROM gov_tool_tiers_unresolved ORDER BY agent") == [
            {"agent": "bob", "tool": "save_note", "tier": "allow"},  # never staked: nothing here names its account
            {"agent": "colony", "tool": "save_note", "tier": "allow"}]  # two accounts staked as "colony"
        [note] = _gov_store.list_log(engine)
        assert (note["action"], note["actor"]) == ("unresolved_on_upgrade", "migration 19")
        assert [lock["ref"] for lock in note["detail"]["locks"]] == ["bid:colony"]
        assert [(t["agent"], t["tool"]) for t in note["detail"]["tool_tiers"]] == [("bob", "save_note"),
                                                                                  ("colony", "save_note")]
        # The parked lock is still released by its bid; a new lock must name an account.
        assert _stake_store.release_lock(engine, "bid:colony", 5.0)
        with pytest.raises(StoreError, match="own account"):
            pg.execute("INSERT INTO market_stake_locks(ref, agent, amount, created_at) VALUES ('n', 'ada', 1, 0)")
    finally:
        pg.close()
