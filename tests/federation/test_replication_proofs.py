"""An origin that signs two histories is convicted by replication: the proof is two events anyone can
check, it travels to other replicas, and the market slashes the convicted stake exactly once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from replication_helpers import heads, replica_rows

from colony.config import Settings
from colony.federation.replica_sources import ReplicaSource, StoreSource
from colony.federation.replica_wire import ProofRejectedError
from colony.federation.replication import (
    equivocations,
    import_proof,
    mark_reported,
    slash_equivocators,
    sync,
    verify_replica,
)
from colony.identity import Keyring, SchnorrKey
from colony.ledger import MICRO, EquivocationProof, Ledger, open_ledger_store, verify_equivocation
from colony.ledger.records import Entry
from colony.market import stakes
from colony.store import Database, open_database
from ledger_helpers import Book, open_book


def two_histories(tmp_path: Path, key: SchnorrKey, accounts: int = 50) -> tuple[Book, Book, str]:
    """One origin key, one shared past, then two different #2 for one account (a double spend)."""
    one = open_book(tmp_path / "one.db", key, accounts=accounts, funds=MICRO)
    one.close()
    shutil.copy(tmp_path / "one.db", tmp_path / "two.db")
    keys = one.keys
    one, two = open_book(tmp_path / "one.db", key), open_book(tmp_path / "two.db", key)
    one.keys = two.keys = keys
    victim = keys[1].public_hex
    one.ledger.pay(keys[1], keys[2].public_hex, MICRO // 2, memo="to one payee")
    two.ledger.pay(keys[1], keys[3].public_hex, MICRO // 2, memo="to another")
    return one, two, victim


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[dict[str, Database]]:
    dbs = {name: open_database(tmp_path / f"{name}.db") for name in ("b", "c", "d", "e")}
    yield dbs
    for db in dbs.values():
        db.close()


def test_two_replicas_shown_two_histories_convict_the_origin_when_they_compare(
        tmp_path: Path, replicas: dict[str, Database]) -> None:
    key = SchnorrKey.generate()
    one, two, victim = two_histories(tmp_path, key)
    origin = key.public_hex
    b, c = replicas["b"], replicas["c"]
    assert sync(b, origin, StoreSource(one.store)).in_sync  # each replica sees a consistent history
    assert sync(c, origin, StoreSource(two.store)).in_sync
    held = heads(b, origin)[victim]

    result = sync(b, origin, ReplicaSource(c, origin))  # b pulls the origin's ledger from replica c
    [proof] = result.proofs
    assert proof.signer == origin and result.mode == "diff"
    assert heads(b, origin)[victim] == held  # b keeps what it had; the account's sync stopped
    # The proof is the two #2 entries, and checks out from its JSON alone, by anyone.
    wire = proof.model_dump_json()
    assert verify_equivocation(EquivocationProof.model_validate_json(wire))
    [stored] = equivocations(b)
    assert (stored.account, stored.seq, stored.found_by, stored.signer) == (victim, 2, "sync", origin)
    assert b.scalar("SELECT convicted_at FROM federation_origins WHERE origin = ?", (origin,)) is not None
    # The payees differ on the two sides: each replica has its own; the other one's never came over.
    assert sync(b, origin, ReplicaSource(c, origin)).proofs == [proof]  # found again, stored once
    assert len(equivocations(b)) == 1

    # Another replica takes it from the wire, once; the transport marks it reported once.
    d = replicas["d"]
    assert import_proof(d, EquivocationProof.model_validate_json(wire))
    assert not import_proof(d, EquivocationProof(first=proof.second, second=proof.first))  # same pair, either order
    assert [p.id for p in equivocations(d, unreported=True)] == [stored.id]
    assert mark_reported(d, [stored.id]) == 1 and mark_reported(d, [stored.id]) == 0
    assert equivocations(d, unreported=True) == []
    one.close()
    two.close()


def test_a_replica_holding_history_one_convicts_an_origin_that_later_serves_history_two(
        tmp_path: Path, replicas: dict[str, Database]) -> None:
    key = SchnorrKey.generate()
    one, two, victim = two_histories(tmp_path, key)
    b = replicas["b"]
    sync(b, key.public_hex, StoreSource(one.store))
    result = sync(b, key.public_hex, StoreSource(two.store))
    [proof] = result.proofs
    assert Entry.from_event(proof.first).body.account == victim and proof.first.id != proof.second.id
    # History two's payee is new here and consistent, so it is stored; history one's payee is served
    # shorter than this replica holds it — a rollback, reported, but not provable on its own.
    assert [(p.account, p.code) for p in result.problems] == [(one.keys[2].public_hex, "rolled_back")]
    assert heads(b, key.public_hex)[one.keys[3].public_hex][0] == 2
    one.close()
    two.close()


def test_forged_proofs_are_refused_and_stored_nowhere(tmp_path: Path, replicas: dict[str, Database]) -> None:
    key = SchnorrKey.generate()
    one, two, _ = two_histories(tmp_path, key)
    b = replicas["b"]
    sync(b, key.public_hex, StoreSource(one.store))
    [proof] = sync(b, key.public_hex, StoreSource(two.store)).proofs
    d = replicas["d"]
    with pytest.raises(ProofRejectedError):
        import_proof(d, EquivocationProof(first=proof.first, second=proof.first))
    forged = proof.second.model_copy(update={"sig": SchnorrKey.generate().sign(bytes.fromhex(proof.second.id)).hex()})
    with pytest.raises(ProofRejectedError):
        import_proof(d, EquivocationProof(first=proof.first, second=forged))
    assert equivocations(d) == []
    one.close()
    two.close()


def test_an_origin_that_is_gone_is_replicated_from_a_replica_of_it(
        tmp_path: Path, replicas: dict[str, Database]) -> None:
    key = SchnorrKey.generate()
    one = open_book(tmp_path / "one.db", key, accounts=120, funds=MICRO)
    for i in range(0, 40, 2):
        one.ledger.pay(one.keys[i], one.keys[i + 1].public_hex, 1_000)
    root = one.ledger.root()
    b, e = replicas["b"], replicas["e"]
    assert sync(b, key.public_hex, StoreSource(one.store)).in_sync
    one.close()  # the origin is gone
    relayed = sync(e, key.public_hex, ReplicaSource(b, key.public_hex))
    assert relayed.problems == [] and relayed.root_after == root and relayed.entries_added == replica_rows(b, key.public_hex)
    assert verify_replica(e, key.public_hex).ok


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    settings = Settings()
    db = open_database(settings.db_path)
    try:
        yield Keyring(db, settings)
    finally:
        db.close()


def test_a_proof_found_by_replication_slashes_the_equivocator_once(
        keyring: Keyring, tmp_path: Path, replicas: dict[str, Database]) -> None:
    """The equivocating key is a staked agent of this node, sequencing ledgers elsewhere."""
    ada = keyring.create_agent("ada")
    ledger = Ledger(open_ledger_store(keyring.db, keyring.settings), keyring.node().schnorr_key)
    ledger.mint(ada.public_hex, 100 * MICRO, "test funding")
    stakes.deposit(keyring, "ada", 40 * MICRO)
    one, two, _ = two_histories(tmp_path, keyring.schnorr_key("ada"), accounts=5)
    # The node's own database is its replica: it follows ada's ledgers like any peer's.
    sync(keyring.db, ada.public_hex, StoreSource(one.store))
    [proof] = sync(keyring.db, ada.public_hex, StoreSource(two.store)).proofs

    [record] = slash_equivocators(keyring)
    assert (record.agent, record.amount) == ("ada", 40 * MICRO)
    assert stakes.staked(keyring, "ada") == 0
    treasury = stakes.treasury(keyring).public_hex
    assert ledger.balance(treasury).balance == 40 * MICRO
    # Again, after the same proof came back from a peer (either order), and straight at the market:
    assert slash_equivocators(keyring) == []
    assert not import_proof(keyring.db, EquivocationProof(first=proof.second, second=proof.first))
    assert slash_equivocators(keyring) == []
    assert stakes.slash_for_equivocation(keyring, proof) == 40 * MICRO  # the first result, not a second slash
    assert ledger.balance(treasury).balance == 40 * MICRO
    assert ledger.balance(ada.public_hex).balance == 60 * MICRO
    assert [p.slashed for p in equivocations(keyring.db)] == [40 * MICRO]
    assert ledger.verify().ok
    # A proof against a key this node does not host is left for the node that hosts it.
    stranger = SchnorrKey.generate()
    (tmp_path / "s").mkdir()
    s_one, s_two, _ = two_histories(tmp_path / "s", stranger, accounts=4)
    sync(keyring.db, stranger.public_hex, StoreSource(s_one.store))
    assert len(sync(keyring.db, stranger.public_hex, StoreSource(s_two.store)).proofs) == 1
    assert slash_equivocators(keyring) == []
    for book in (one, two, s_one, s_two):
        book.close()


def test_a_rescan_after_a_long_partition_convicts_and_reports_a_rollback_as_a_diff_does(
        tmp_path: Path, replicas: dict[str, Database]) -> None:
    """History two then moves on a lot (more new entries than `RESCAN_SHARE` of its total), so the sync
    scans everything again instead of diffing: the same proof, the same rollback, the rest stored."""
    key = SchnorrKey.generate()
    one, two, victim = two_histories(tmp_path, key)
    b = replicas["b"]
    sync(b, key.public_hex, StoreSource(one.store))
    for i in range(10, 30, 2):
        two.ledger.pay(two.keys[i], two.keys[i + 1].public_hex, 1_000)
    result = sync(b, key.public_hex, StoreSource(two.store))
    assert result.mode == "rescan"
    [proof] = result.proofs
    assert Entry.from_event(proof.first).body.account == victim and proof.first.id != proof.second.id
    assert [(p.account, p.code) for p in result.problems] == [(one.keys[2].public_hex, "rolled_back")]
    assert heads(b, key.public_hex)[one.keys[3].public_hex][0] == 2
    for i in range(10, 30):  # the partition's transfers came over, verified
        assert heads(b, key.public_hex)[two.keys[i].public_hex][0] == 2
    assert result.entries_added == 20 + 1  # and history two's payee of the double spend
    one.close()
    two.close()
