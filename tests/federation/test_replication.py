"""Ledger replication between two real ledgers in separate SQLite files: a first sync pulls and
verifies everything, an unchanged origin costs one request, a change of k accounts costs about
k·DEPTH requests whatever the number of accounts, and a source that lies is refused with nothing
stored for the account it lied about."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import apsw
import pytest
from replication_helpers import Tamper, TamperedSource, forge, heads, pay, replica_rows

from colony.errors import StoreError
from colony.federation import _replica_store as rs
from colony.federation.replica_sources import StoreSource
from colony.federation.replication import RESCAN_SHARE, sync, verify_replica
from colony.identity import SchnorrKey
from colony.ledger import MICRO
from colony.ledger.merkle import DEPTH, EMPTY_ROOT
from colony.ledger.records import Entry
from colony.store import Database, open_database
from ledger_helpers import Book, open_book

ACCOUNTS = 2_000


@dataclass
class OriginFile:
    path: Path
    node_key: SchnorrKey
    keys: list[SchnorrKey]


@pytest.fixture(scope="module")
def origin_file(tmp_path_factory: pytest.TempPathFactory) -> OriginFile:
    """A home ledger with a few thousand funded accounts, some transfers and a hold of each outcome,
    built once; each test works on a copy of the file."""
    path = tmp_path_factory.mktemp("origin") / "a.db"
    book = open_book(path, accounts=ACCOUNTS, funds=MICRO)
    for i in range(0, 200, 2):
        pay(book, i, i + 1)
    hold = book.ledger.pay(book.keys[300], None, 5_000, op="hold")
    book.ledger.capture(hold.transfer_id, book.keys[301].public_hex)
    hold = book.ledger.pay(book.keys[302], book.keys[303].public_hex, 7_000, op="hold")
    book.ledger.release(hold.transfer_id)
    assert book.ledger.verify().ok
    book.close()
    return OriginFile(path, book.node_key, book.keys)


@pytest.fixture
def origin(origin_file: OriginFile, tmp_path: Path) -> Iterator[Book]:
    copy = tmp_path / "origin.db"
    copy.write_bytes(origin_file.path.read_bytes())
    book = open_book(copy, origin_file.node_key)
    book.keys = origin_file.keys
    yield book
    book.close()


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Database]:
    db = open_database(tmp_path / "replica.db")
    yield db
    db.close()


def test_first_sync_pulls_and_verifies_everything_then_an_unchanged_origin_costs_one_request(
        origin: Book, replica: Database) -> None:
    node = origin.ledger.node
    total = origin.store.entry_count()
    first = sync(replica, node, StoreSource(origin.store))
    assert first.problems == [] and first.proofs == []
    assert first.mode == "scan" and first.root_before == EMPTY_ROOT
    assert first.entries_added == total == replica_rows(replica, node)
    assert first.accounts_differing == first.accounts_synced == ACCOUNTS
    assert first.root_after == first.remote_root == origin.ledger.root() and first.in_sync
    # Pages of 500 entries: a few requests per thousand entries, not one per account.
    assert first.requests == 1 + -(-total // 500)
    assert first.bytes > 500 * total  # every entry and every cited authorisation, signed, came over
    # The replica passes the ledger's own full verifier: chains, signatures, pairing and supply.
    report = verify_replica(replica, node)
    assert report.ok, report.problems[:3]
    assert report.entries == total and report.mints == ACCOUNTS and not report.partial

    again = sync(replica, node, StoreSource(origin.store))
    assert (again.mode, again.requests, again.entries_added, again.problems) == ("unchanged", 1, 0, [])
    assert again.bytes < 200


def test_an_incremental_sync_costs_requests_in_the_changed_accounts_not_in_all_accounts(
        origin: Book, replica: Database) -> None:
    node = origin.ledger.node
    sync(replica, node, StoreSource(origin.store))
    costs = {}
    start = 1000
    for k in (1, 4, 16):
        for i in range(k):  # k transfers between 2k accounts never touched before
            pay(origin, start + 2 * i, start + 2 * i + 1)
        start += 2 * k
        result = sync(replica, node, StoreSource(origin.store))
        assert result.problems == [] and result.mode == "diff"
        assert result.accounts_differing == result.accounts_synced == 2 * k
        assert result.entries_added == 2 * k and result.in_sync
        # root + at most DEPTH tree questions and one page per changed account.
        assert result.requests <= 1 + 1 + 2 * k * (DEPTH + 1)
        costs[k] = result.requests
    assert costs[1] < costs[4] < costs[16]
    assert costs[1] <= 12 < ACCOUNTS / 100  # two changed accounts of 2,000: a dozen requests
    assert verify_replica(replica, node).ok


def test_after_a_long_partition_a_sync_scans_again_for_fewer_requests_than_a_diff(
        origin: Book, replica: Database) -> None:
    """300 accounts changed (more than `RESCAN_SHARE` of the origin's entries are new): a diff would ask
    about DEPTH tree questions per account; a rescan pages through everything once and stores only
    what follows each head."""
    node = origin.ledger.node
    sync(replica, node, StoreSource(origin.store))
    held = heads(replica, node)
    for i in range(150):
        pay(origin, 1000 + 2 * i, 1000 + 2 * i + 1)
    total = origin.store.entry_count()
    assert RESCAN_SHARE * total < 300
    result = sync(replica, node, StoreSource(origin.store))
    assert result.problems == [] and result.proofs == [] and result.mode == "rescan" and result.in_sync
    assert result.accounts_differing == result.accounts_synced == 300 and result.entries_added == 300
    assert result.requests == 1 + -(-total // 500) < 300
    after = heads(replica, node)
    assert {a: h for a, h in after.items() if h != held.get(a)}.keys() == {
        origin.keys[i].public_hex for i in range(1000, 1300)}
    assert verify_replica(replica, node).ok


def test_an_account_with_new_history_on_both_sides_of_a_transfer_pulls_every_page(
        origin: Book, replica: Database) -> None:
    node = origin.ledger.node
    sync(replica, node, StoreSource(origin.store))
    for _ in range(7):
        pay(origin, 10, 11, 10)
    result = sync(replica, node, StoreSource(origin.store), page=3)  # 7 new entries each: 3 pages
    assert result.problems == [] and result.entries_added == 14 and result.in_sync
    assert heads(replica, node)[origin.keys[10].public_hex][0] == origin.ledger.balance(origin.keys[10].public_hex).seq


TAMPERS: list[tuple[Tamper, str]] = [
    ("amount", "entry_hash"),
    ("signature", "entry_signature"),
    ("gap", "seq_gap"),
    ("link", "broken_link"),
    ("balance", "bad_balance"),
    ("authorisation", "unknown_authorisation"),
]


@pytest.mark.parametrize(("how", "code"), TAMPERS)
def test_a_tampered_account_is_refused_whole_and_the_honest_ones_are_stored(
        origin: Book, replica: Database, how: Tamper, code: str) -> None:
    node = origin.ledger.node
    sync(replica, node, StoreSource(origin.store))
    target = origin.keys[1500].public_hex
    before = heads(replica, node)[target]
    rows = replica_rows(replica, node)
    pay(origin, 1500, 1501)  # two new entries on the target's chain, one on each payee's
    pay(origin, 1500, 1502)
    pay(origin, 1600, 1601)  # and an honest change elsewhere
    liar = TamperedSource(StoreSource(origin.store), target, how, origin.node_key, from_seq=before[0])
    result = sync(replica, node, liar)
    assert code in {p.code for p in result.problems if p.account == target}, result.problems
    assert {p.account for p in result.problems} == {target}
    assert heads(replica, node)[target] == before  # nothing stored for the target
    assert result.entries_added == 4 == replica_rows(replica, node) - rows  # 1501, 1502, 1600, 1601
    assert result.proofs == [] and not result.in_sync
    # An honest source afterwards brings the target in.
    honest = sync(replica, node, StoreSource(origin.store))
    assert honest.problems == [] and honest.entries_added == 2 and honest.in_sync


@pytest.mark.parametrize("how", ["signature", "gap", "authorisation"])
def test_a_first_sync_from_a_tampered_source_stores_every_account_but_the_lied_about_one(
        origin: Book, replica: Database, how: Tamper) -> None:
    node = origin.ledger.node
    target = origin.keys[300].public_hex  # the account with a captured hold
    result = sync(replica, node, TamperedSource(StoreSource(origin.store), target, how, origin.node_key))
    assert result.mode == "scan" and {p.account for p in result.problems} == {target}
    assert target not in heads(replica, node) and len(heads(replica, node)) == ACCOUNTS - 1
    # The next sync walks the tree to the one account still missing.
    honest = sync(replica, node, StoreSource(origin.store))
    assert honest.mode == "diff" and honest.accounts_differing == 1 and honest.in_sync
    assert honest.requests <= 2 + DEPTH + 1
    assert verify_replica(replica, node).ok


def test_a_source_that_lies_about_its_tree_gets_nothing_stored(origin: Book, replica: Database) -> None:
    node = origin.ledger.node
    sync(replica, node, StoreSource(origin.store))
    pay(origin, 5, 6)
    honest = StoreSource(origin.store)

    class LyingTree(TamperedSource):
        def children(self, prefix: str) -> dict[str, str]:
            found = dict(self.inner.children(prefix))
            return {k: "00" * 32 for k in found} if prefix else found

    rows = replica_rows(replica, node)
    result = sync(replica, node, LyingTree(honest, "", "amount", origin.node_key))
    assert [p.code for p in result.problems] == ["inconsistent_tree"] and result.entries_added == 0
    assert replica_rows(replica, node) == rows


def test_the_replica_database_refuses_a_chain_that_does_not_link(origin: Book, replica: Database) -> None:
    """Even a verifier bug could not store a broken chain: the replica's triggers refuse it."""
    node = origin.ledger.node
    account = origin.keys[0].public_hex
    mint, debit = sorted(origin.store.entries(account), key=lambda e: e.body.seq)
    with pytest.raises(apsw.ConstraintError, match="seq must be"):
        rs.append_account(replica, node, account, 0, [debit], [])
    assert rs.append_account(replica, node, account, 0, [mint], [])
    forged = Entry.from_event(forge(origin.node_key, debit, balance=debit.body.balance + 1))
    with pytest.raises(apsw.ConstraintError, match="balance must follow"):
        rs.append_account(replica, node, account, 1, [forged], [])
    assert not rs.append_account(replica, node, account, 0, [mint], [])  # the head moved: nothing written
    with pytest.raises(StoreError, match="append-only"):
        replica.execute("UPDATE federation_replica_entries SET amount = 1")


def test_a_ledger_on_postgresql_is_served_alike(pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The three reads a source needs (`entries_after`, `scan_after`, `cited`) and the market's
    reputation read run on PostgreSQL too: a SQLite replica of a PostgreSQL ledger verifies."""
    import functools

    from colony.config import Settings
    from colony.ledger import Ledger, open_ledger_store
    from colony.market.queries import reputation_events
    from colony.store.engine import open_engine
    from colony.store.pg.shared import close_for

    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    settings = Settings()
    node_db = open_database(settings.db_path)
    replica = open_database(tmp_path / "replica.db")
    try:
        key = SchnorrKey.generate()
        store = open_ledger_store(node_db, settings)
        assert type(store).__name__ == "PgLedgerStore"
        ledger = Ledger(store, key)
        keys = [SchnorrKey.generate() for _ in range(30)]
        for k in keys:
            ledger.mint(k.public_hex, MICRO, "funding")
        for i in range(0, 20, 2):
            ledger.pay(keys[i], keys[i + 1].public_hex, 1_000)
        hold = ledger.pay(keys[25], None, 3_000, op="hold")
        ledger.capture(hold.transfer_id, keys[26].public_hex)
        source = StoreSource(store, functools.partial(reputation_events, open_engine(node_db, settings)))
        first = sync(replica, key.public_hex, source, page=7)
        assert first.problems == [] and first.in_sync and first.entries_added == store.entry_count()
        ledger.pay(keys[1], keys[2].public_hex, 500)
        second = sync(replica, key.public_hex, source)
        assert second.problems == [] and second.in_sync and second.entries_added == 2
        assert verify_replica(replica, key.public_hex).ok
        assert source.reputation_events(0, 10).events == []
    finally:
        replica.close()
        close_for(settings)
        node_db.close()


def test_a_source_that_sends_far_more_than_it_announced_is_cut_off(origin: Book, replica: Database) -> None:
    from colony.federation.replica_wire import RootInfo

    class Understated(TamperedSource):
        def root(self) -> RootInfo:
            return self.inner.root().model_copy(update={"entries": 10})

    result = sync(replica, origin.ledger.node, Understated(StoreSource(origin.store), "", "amount", origin.node_key),
                  page=100)
    assert [p.code for p in result.problems] == ["oversized"] and result.requests == 1 + 2


def test_reputation_events_that_do_not_verify_are_refused_and_skipped(replica: Database) -> None:
    from colony.federation.replication import sync_reputation
    from colony.identity import Event
    from colony.ledger import SqliteLedgerStore
    from colony.market.reputation import feedback_event

    rater, ratee = SchnorrKey.generate(), SchnorrKey.generate()
    good = [feedback_event(rater, ratee.public_hex, f"pay-{i}", 80, created_at=1_700_000_000 + i) for i in range(3)]
    forged = good[1].model_copy(update={"content": good[1].content.replace('"score":80', '"score":100')})
    served = [(1, good[0]), (2, forged), (5, good[2])]

    def reader(after: int, limit: int) -> list[tuple[int, Event]]:
        return [item for item in served if item[0] > after][:limit]

    origin = "ab" * 32
    source = StoreSource(SqliteLedgerStore(replica), reader)
    result = sync_reputation(replica, origin, source, page=2)
    assert (result.received, result.added, result.cursor, result.requests) == (3, 2, 5, 2)
    assert [(p.seq, p.code) for p in result.problems] == [(2, "bad_signature")]
    stored = {r[0] for r in replica.tuples("SELECT id FROM federation_reputation")}
    assert stored == {good[0].id, good[2].id}
    assert sync_reputation(replica, origin, source).added == 0  # resumes after the cursor

