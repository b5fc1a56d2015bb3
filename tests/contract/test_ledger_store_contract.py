"""The ledger store's contract, run on every backend: SQLite (the node's file) and PostgreSQL.

Every test but the last takes the `backend` fixture, parametrised over both engines, and asserts
only what a `LedgerStore` promises through `Ledger` — transfers, mints, holds captured and
released, a nonce applied once with its result recorded (refusals included), balances never
below zero, append-only rows, a verification that passes — so whatever passes on SQLite must
pass on PostgreSQL. The last runs one script of operations on both engines with the same keys,
nonces and clock and compares what they stored, down to the state root. Threads racing on one
nonce check exactly-once under contention here; OS processes and SIGKILL are in
tests/test_ledger_pg_processes.py. PostgreSQL is the suite's private server (`pg_url`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from colony.errors import StoreError
from colony.identity import SchnorrKey
from colony.ledger import (
    MICRO,
    HoldNotFoundError,
    IllegalHoldTransitionError,
    InvalidAuthorisationError,
    Ledger,
    LedgerStore,
    SqliteLedgerStore,
    TransferRefusedError,
    TransferResult,
    sign_transfer,
)
from colony.ledger.pg_store import PgLedgerStore
from colony.ledger.wire import GENESIS
from colony.store import open_database
from colony.store.pg import open_pg

NODE = SchnorrKey(bytes.fromhex("11" * 32))
#: Fixed agent keys, so both engines sign the same authorisations (their ids are their hashes).
ALICE, BOB, CAROL = (SchnorrKey(bytes.fromhex(f"{n:02x}" * 32)) for n in (0x21, 0x22, 0x23))


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    name: str
    store: LedgerStore
    ledger: Ledger
    clock: Clock
    #: Raw SQL on the same database, as someone bypassing the store would run it.
    execute: Callable[[str], object]
    #: Another ledger on the same database with its own connections (another worker).
    another: Callable[[], Ledger]


def _open(name: str, tmp_path: Path, pg_url: str | None) -> Iterator[Backend]:
    clock = Clock()
    if name == "sqlite":
        db = open_database(tmp_path / "ledger.db")
        store: LedgerStore = SqliteLedgerStore(db)
        closers = [db.close]

        def another() -> Ledger:
            other = open_database(tmp_path / "ledger.db")
            closers.append(other.close)
            return Ledger(SqliteLedgerStore(other), NODE, clock=clock)
        execute: Callable[[str], object] = db.execute
    else:
        assert pg_url is not None
        pg = open_pg(pg_url, max_size=8)
        store = PgLedgerStore(pg)
        closers = [pg.close]

        def another() -> Ledger:
            other = open_pg(pg_url, max_size=4)
            closers.append(other.close)
            return Ledger(PgLedgerStore(other), NODE, clock=clock)
        execute = pg.execute
    try:
        yield Backend(name, store, Ledger(store, NODE, clock=clock), clock, execute, another)
    finally:
        for close in reversed(closers):
            close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    yield from _open(request.param, tmp_path, url)


def _funded(b: Backend, amount: int = 100 * MICRO) -> None:
    b.ledger.mint(ALICE.public_hex, amount, "test funds", nonce="a1" * 32)


def _pay(b: Backend, payer: SchnorrKey, to: SchnorrKey | None, amount: int, nonce: str, *, memo: str = "",
         op: str = "transfer") -> TransferResult:
    event = sign_transfer(payer, to.public_hex if to else None, amount, memo=memo, nonce=nonce, now=b.clock(),
                          op="hold" if op == "hold" else "transfer")
    return b.ledger.hold(event) if op == "hold" else b.ledger.transfer(event)


# -- transfers and mints ---------------------------------------------------------------------------


def test_a_mint_and_transfers_link_signed_entries_and_keep_the_supply(backend: Backend) -> None:
    b = backend
    minted = b.ledger.mint(ALICE.public_hex, 100 * MICRO, "initial allocation", nonce="a1" * 32)
    assert (minted.balance, minted.supply, minted.amount) == (100 * MICRO, 100 * MICRO, 100 * MICRO)
    first = _pay(b, ALICE, BOB, 30 * MICRO, "01" * 32, memo="for the summary")
    second = _pay(b, BOB, CAROL, 5 * MICRO, "02" * 32)
    assert (first.status, first.payer_balance, len(first.entries), first.replayed) == ("applied", 70 * MICRO, 2, False)
    assert [b.ledger.balance(k.public_hex).balance for k in (ALICE, BOB, CAROL)] == [70 * MICRO, 25 * MICRO, 5 * MICRO]
    bob = b.store.entries(BOB.public_hex)
    assert [(e.body.seq, e.body.kind, e.body.amount, e.body.balance) for e in bob] == [
        (2, "debit", 5 * MICRO, 25 * MICRO), (1, "credit", 30 * MICRO, 30 * MICRO)]
    assert bob[1].body.prev == GENESIS and bob[0].body.prev == bob[1].id
    assert [e.id for e in bob] == [second.entries[0], first.entries[1]]
    assert b.store.memos(bob)[bob[1].id] == "for the summary"
    assert b.store.supply() == 100 * MICRO and b.store.entry_count() == 5
    assert [a.account for a in b.store.accounts()] == sorted(k.public_hex for k in (ALICE, BOB, CAROL))
    report = b.ledger.verify()
    assert report.ok, report.problems[:3]
    assert (report.entries, report.transfers, report.mints) == (5, 2, 1)


def test_a_mint_is_applied_once_by_its_nonce(backend: Backend) -> None:
    b = backend
    first = b.ledger.mint(ALICE.public_hex, 10 * MICRO, "grant", nonce="b1" * 32)
    again = b.ledger.mint(ALICE.public_hex, 10 * MICRO, "grant", nonce="b1" * 32)
    assert again == first and b.store.supply() == 10 * MICRO and b.store.entry_count() == 1
    with pytest.raises(InvalidAuthorisationError) as info:
        b.ledger.mint(BOB.public_hex, 3 * MICRO, "another grant", nonce="b1" * 32)
    assert info.value.code == "nonce_already_used"
    assert len(b.store.mints()) == 1


# -- idempotency and refusals ------------------------------------------------------------------------


def test_a_replayed_nonce_returns_the_recorded_result_and_moves_nothing(backend: Backend) -> None:
    b = backend
    _funded(b)
    event = sign_transfer(ALICE, BOB.public_hex, 7 * MICRO, nonce="03" * 32, now=b.clock())
    first = b.ledger.transfer(event)
    again = b.ledger.transfer(event)
    assert again.replayed and again.model_copy(update={"replayed": False}) == first
    # The holder of the key asking again for the same payment, signed anew: the first result.
    assert b.ledger.pay(ALICE, BOB.public_hex, 7 * MICRO, nonce="03" * 32).entries == first.entries
    with pytest.raises(InvalidAuthorisationError) as info:  # the same nonce for another payment
        b.ledger.pay(ALICE, BOB.public_hex, 8 * MICRO, nonce="03" * 32)
    assert info.value.code == "nonce_already_used"
    other = sign_transfer(ALICE, CAROL.public_hex, 7 * MICRO, nonce="03" * 32, now=b.clock())
    with pytest.raises(InvalidAuthorisationError):  # straight to the store: the claim refuses it too
        b.store.apply_transfer(b.ledger.check_authorisation(other), b.ledger.node, b.ledger._sign_entry)
    assert b.ledger.balance(BOB.public_hex).balance == 7 * MICRO and b.store.entry_count() == 3


def test_insufficient_funds_is_refused_recorded_and_spends_the_nonce(backend: Backend) -> None:
    b = backend
    _funded(b, 5 * MICRO)
    with pytest.raises(TransferRefusedError) as info:
        _pay(b, ALICE, BOB, 6 * MICRO, "04" * 32)
    refused = info.value.result
    assert (refused.status, refused.reason, refused.payer_balance, refused.entries) == (
        "refused", "insufficient_funds", 5 * MICRO, [])
    with pytest.raises(TransferRefusedError):  # a payer with no account at all
        _pay(b, CAROL, BOB, 1, "05" * 32)
    assert b.store.account(CAROL.public_hex) is None
    b.ledger.mint(ALICE.public_hex, 10 * MICRO, "more", nonce="a2" * 32)
    with pytest.raises(TransferRefusedError) as again:  # funded now, but the nonce is spent
        _pay(b, ALICE, BOB, 6 * MICRO, "04" * 32)
    assert again.value.result.replayed and again.value.result.reason == "insufficient_funds"
    assert b.store.transfer_result(ALICE.public_hex, "04" * 32) == again.value.result
    assert b.ledger.balance(BOB.public_hex).balance == 0
    assert {(t.auth.nonce, status, reason) for t, status, reason in b.store.transfers()} == {
        ("04" * 32, "refused", "insufficient_funds"), ("05" * 32, "refused", "insufficient_funds")}
    assert b.ledger.verify().ok


# -- holds ---------------------------------------------------------------------------------------------


def test_holds_are_captured_or_released_once(backend: Backend) -> None:
    b = backend
    _funded(b, 20 * MICRO)
    escrow = _pay(b, ALICE, BOB, 6 * MICRO, "06" * 32, op="hold")
    loose = _pay(b, ALICE, None, 4 * MICRO, "07" * 32, op="hold")
    view = b.ledger.balance(ALICE.public_hex)
    assert (view.balance, view.held) == (10 * MICRO, 10 * MICRO)
    with pytest.raises(InvalidAuthorisationError) as mismatch:
        b.ledger.capture(escrow.transfer_id, CAROL.public_hex)
    assert mismatch.value.code == "recipient_mismatch"
    captured = b.ledger.capture(escrow.transfer_id)
    assert (captured.state, captured.captured_to) == ("captured", BOB.public_hex)
    released = b.ledger.release(loose.transfer_id)
    assert released.state == "released"
    with pytest.raises(IllegalHoldTransitionError):
        b.ledger.release(escrow.transfer_id)
    with pytest.raises(IllegalHoldTransitionError):
        b.ledger.capture(loose.transfer_id, CAROL.public_hex)
    with pytest.raises(HoldNotFoundError):
        b.ledger.release("ff" * 32)
    view = b.ledger.balance(ALICE.public_hex)
    assert (view.balance, view.held, b.ledger.balance(BOB.public_hex).balance) == (14 * MICRO, 0, 6 * MICRO)
    assert [(h.id, h.state) for h in b.store.holds(ALICE.public_hex)] == [
        (escrow.transfer_id, "captured"), (loose.transfer_id, "released")]
    assert [e.body.kind for e in reversed(b.store.entries(ALICE.public_hex))] == [
        "mint", "hold", "hold", "capture", "release"]
    assert b.ledger.verify().ok


def test_two_closings_of_one_hold_racing_close_it_once(backend: Backend) -> None:
    b = backend
    _funded(b, 20 * MICRO)
    hold = _pay(b, ALICE, None, 5 * MICRO, "08" * 32, op="hold")
    ledgers = [b.another() for _ in range(4)]
    outcomes: list[str] = []
    start = threading.Barrier(len(ledgers))

    def close(i: int) -> None:
        start.wait()
        try:
            if i % 2:
                ledgers[i].release(hold.transfer_id)
                outcomes.append("released")
            else:
                ledgers[i].capture(hold.transfer_id, CAROL.public_hex)
                outcomes.append("captured")
        except IllegalHoldTransitionError:
            outcomes.append("refused")

    threads = [threading.Thread(target=close, args=(i,)) for i in range(len(ledgers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("refused") == 3
    assert b.store.hold(hold.transfer_id).state in ("captured", "released")
    assert b.ledger.balance(ALICE.public_hex).held == 0 and b.ledger.verify().ok


# -- exactly once under contention --------------------------------------------------------------------


def test_one_authorisation_sent_by_many_workers_at_once_is_applied_once(backend: Backend) -> None:
    b = backend
    _funded(b, 10 * MICRO)
    events = [sign_transfer(ALICE, BOB.public_hex, 3 * MICRO, nonce=f"{n:02x}" * 32, now=b.clock())
              for n in range(0x30, 0x34)]  # 4 payments, 3 of which fit
    ledgers = [b.another() for _ in range(6)]
    results: list[list[TransferResult | str]] = [[] for _ in ledgers]
    start = threading.Barrier(len(ledgers))

    def send(i: int) -> None:
        start.wait()
        for event in events:
            try:
                results[i].append(ledgers[i].transfer(event))
            except TransferRefusedError as exc:
                results[i].append(f"refused:{exc.result.transfer_id}")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(ledgers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(len(events)):
        seen = [r[k] for r in results]
        firsts = [r for r in seen if isinstance(r, TransferResult) and not r.replayed]
        if all(isinstance(r, str) for r in seen):
            continue  # refused: every worker got the same recorded refusal
        assert len(firsts) == 1, seen  # applied by exactly one worker; the others got its result back
        assert {tuple(r.entries) for r in seen if isinstance(r, TransferResult)} == {tuple(firsts[0].entries)}
    assert b.ledger.balance(BOB.public_hex).balance == 9 * MICRO
    assert b.ledger.balance(ALICE.public_hex).balance == 1 * MICRO
    assert len(b.store.transfers()) == 4 and b.ledger.verify().ok


def test_transfers_both_ways_between_two_accounts_at_once_neither_deadlock_nor_go_negative(
        backend: Backend) -> None:
    b = backend
    b.ledger.mint(ALICE.public_hex, 5 * MICRO, "a", nonce="c1" * 32)
    b.ledger.mint(BOB.public_hex, 5 * MICRO, "b", nonce="c2" * 32)
    ledgers = [b.another() for _ in range(4)]
    start = threading.Barrier(len(ledgers))
    errors: list[BaseException] = []

    def churn(i: int) -> None:
        payer, payee = (ALICE, BOB) if i % 2 else (BOB, ALICE)
        start.wait()
        for n in range(25):
            try:
                ledgers[i].pay(payer, payee.public_hex, 1 * MICRO, nonce=f"{i:02x}{n:02x}" * 16)
            except TransferRefusedError:
                continue
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(len(ledgers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    balances = [b.ledger.balance(k.public_hex).balance for k in (ALICE, BOB)]
    assert sum(balances) == 10 * MICRO and min(balances) >= 0
    assert b.ledger.verify().ok


def test_many_workers_crediting_brand_new_accounts_at_once_each_credit_lands_once(backend: Backend) -> None:
    """Nobody holds a new account's row to lock: two first credits race, one loses and is run again."""
    b = backend
    payers = [SchnorrKey(bytes.fromhex(f"{0x40 + i:02x}" * 32)) for i in range(6)]
    for i, payer in enumerate(payers):
        b.ledger.mint(payer.public_hex, 10 * MICRO, "funds", nonce=f"{0x60 + i:02x}" * 32)
    newcomers = [SchnorrKey(bytes.fromhex(f"{0x50 + i:02x}" * 32)).public_hex for i in range(3)]
    ledgers = [b.another() for _ in payers]
    start = threading.Barrier(len(payers))
    errors: list[BaseException] = []

    def pay(i: int) -> None:
        start.wait()
        for n, newcomer in enumerate(newcomers):
            try:
                ledgers[i].pay(payers[i], newcomer, 1 * MICRO, nonce=f"{0x70 + i:02x}{n:02x}" * 16)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(len(payers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [b.ledger.balance(n).balance for n in newcomers] == [len(payers) * MICRO] * len(newcomers)
    assert all(b.ledger.balance(p.public_hex).balance == 7 * MICRO for p in payers)
    report = b.ledger.verify()
    assert report.ok, report.problems[:3]


# -- what the database refuses -------------------------------------------------------------------------


def test_entries_claims_and_orders_are_append_only_in_the_database(backend: Backend) -> None:
    b = backend
    _funded(b)
    _pay(b, ALICE, BOB, 1 * MICRO, "09" * 32)
    for sql in ("UPDATE ledger_entries SET amount = amount + 1",
                "DELETE FROM ledger_entries",
                "UPDATE ledger_transfers SET amount = 1",
                "DELETE FROM ledger_transfers",
                "UPDATE ledger_treasury SET amount = 1",
                "DELETE FROM ledger_treasury"):
        with pytest.raises(StoreError, match="ledger:"):
            b.execute(sql)
    if b.name == "postgres":  # SQLite has no TRUNCATE
        for table in ("ledger_entries", "ledger_transfers", "ledger_treasury", "ledger_holds"):
            # the holds are also referenced by the market's stake records (migration 14), whose
            # foreign key refuses the TRUNCATE before the ledger's own trigger is reached
            with pytest.raises(StoreError, match=r"ledger:|referenced in a foreign key"):
                b.execute(f"TRUNCATE {table}")
    assert b.store.entry_count() == 3 and b.ledger.verify().ok


def test_balances_never_go_below_zero_and_chains_never_break_whoever_writes(backend: Backend) -> None:
    b = backend
    _funded(b, 2 * MICRO)
    alice = b.ledger.balance(ALICE.public_hex)
    with pytest.raises(StoreError):
        b.execute(f"UPDATE ledger_accounts SET balance = -1 WHERE account = '{ALICE.public_hex}'")
    forged = (f"INSERT INTO ledger_entries(account, seq, prev, kind, amount, balance, counterparty, ref, nonce, signer, "
              f"created_at, id, sig) VALUES ('{ALICE.public_hex}', {{seq}}, '{{prev}}', 'debit', 3000000, {{balance}}, "
              f"NULL, '{'ab' * 32}', '{'cd' * 32}', '{b.ledger.node}', 1, '{'ef' * 32}', '{'00' * 64}')")
    for seq, prev, balance in [(2, alice.head, -1_000_000),       # below zero
                               (2, alice.head, 5_000_000),        # does not follow from the amount
                               (3, alice.head, 0),                # a gap in the chain
                               (2, GENESIS, 0)]:                  # links to the wrong entry
        with pytest.raises(StoreError):
            b.execute(forged.format(seq=seq, prev=prev, balance=balance))
    assert b.ledger.balance(ALICE.public_hex) == alice and b.ledger.verify().ok


# -- reads ----------------------------------------------------------------------------------------------


def test_the_state_tree_answers_by_prefix_and_a_snapshot_reads_one_moment(backend: Backend) -> None:
    b = backend
    _funded(b)
    _pay(b, ALICE, BOB, 1 * MICRO, "0a" * 32)
    root = b.store.root()
    top = b.store.tree_children("")
    assert top and all(len(h) == 64 for h in top.values())
    bucket = ALICE.public_hex[:4]
    assert ALICE.public_hex in b.store.tree_children(bucket)
    with pytest.raises(ValueError, match="hex"):
        b.store.tree_children("XYZ")
    with b.store.snapshot():
        before = b.store.entry_count()
        b.another().pay(ALICE, CAROL.public_hex, 1 * MICRO, nonce="0b" * 32)  # another worker writes meanwhile
        assert b.store.entry_count() == before and b.store.root() == root
    assert b.store.entry_count() == before + 2 and b.store.root() != root


# -- the same operations, both engines -------------------------------------------------------------------


def _script(b: Backend) -> None:
    """Mints, transfers, a refusal, holds captured and released, replays — with fixed nonces and times."""
    b.ledger.mint(ALICE.public_hex, 50 * MICRO, "allocation", nonce="d1" * 32)
    b.clock.now += 1
    b.ledger.mint(BOB.public_hex, 20 * MICRO, "allocation", nonce="d2" * 32)
    for n, (payer, payee, amount) in enumerate([(ALICE, BOB, 3), (BOB, CAROL, 7), (CAROL, ALICE, 2),
                                                 (ALICE, CAROL, 11), (CAROL, BOB, 99)]):
        b.clock.now += 1
        with contextlib.suppress(TransferRefusedError):  # the last one: carol has too little
            _pay(b, payer, payee, amount * MICRO, f"e{n}" * 32, memo=f"payment {n}")
    b.clock.now += 1
    escrow = _pay(b, ALICE, CAROL, 4 * MICRO, "f1" * 32, op="hold")
    stake = _pay(b, BOB, None, 2 * MICRO, "f2" * 32, op="hold")
    b.clock.now += 1
    b.ledger.capture(escrow.transfer_id)
    b.ledger.release(stake.transfer_id)
    b.ledger.pay(ALICE, BOB.public_hex, 3 * MICRO, memo="payment 0", nonce="e0" * 32)  # a replay: nothing moves


def test_the_same_operations_store_the_same_ledger_and_root_on_both_engines(tmp_path: Path, pg_url: str) -> None:
    stored: dict[str, dict[str, Any]] = {}
    for name in ("sqlite", "postgres"):
        for b in _open(name, tmp_path, pg_url):
            _script(b)
            report = b.ledger.verify()
            assert report.ok, (name, report.problems[:3])
            s = b.store
            stored[name] = {
                "root": s.root(), "supply": s.supply(), "accounts": s.accounts(),
                # signatures carry fresh randomness (BIP-340); everything they sign is compared
                "entries": [e._replace(sig="") for e in s.scan_entries()],
                "transfers": [(t.id, status, reason) for t, status, reason in s.transfers()],
                "mints": [m.id for m in s.mints()], "holds": s.holds(), "tree": s.tree_nodes(),
                "results": [s.transfer_result(ALICE.public_hex, f"e{n}" * 32) for n in (0, 3)],
            }
    sqlite, postgres = stored["sqlite"], stored["postgres"]
    assert [e.id for e in sqlite["entries"]] == [e.id for e in postgres["entries"]]  # ids hash every field
    for key in sqlite:
        assert sqlite[key] == postgres[key], key
    assert len(sqlite["entries"]) == 15 and sqlite["supply"] == 70 * MICRO
