"""Tampering: an attacker with the database file (but not the node's key) changes a ledger row.

The triggers refuse UPDATE and DELETE, so the attacker first drops them, as anyone holding the
file can. `verify` must still name the changed entry — account, seq and what is wrong — because
it recomputes every hash, signature and balance from the journal and trusts no stored summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from colony.ledger import MICRO, Entry
from colony.ledger.merkle import EMPTY_ROOT
from ledger_helpers import Book, open_book


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    """Four accounts with transfers, an open hold and a captured one: every kind of entry."""
    b = open_book(tmp_path / "ledger.db", accounts=4, funds=50 * MICRO)
    k = b.keys
    for i in range(12):
        b.ledger.pay(k[i % 4], k[(i + 1) % 4].public_hex, (i + 1) * 100_000, memo=f"t{i}")
    held = b.ledger.pay(k[0], None, 2 * MICRO, op="hold")
    b.ledger.capture(held.transfer_id, k[2].public_hex)
    b.ledger.pay(k[1], k[3].public_hex, MICRO, op="hold")
    assert b.ledger.verify().ok
    yield b
    b.close()


def _attack(book: Book, *statements: str, params: tuple[object, ...] = ()) -> None:
    """Change the file the way its owner could: drop the guards, edit, leave no trace of the guards."""
    conn = apsw.Connection(str(book.path))
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'ledger_%'"):
        conn.execute(f"DROP TRIGGER {name}")
    for sql in statements:
        conn.execute(sql, params if "?" in sql else ())
    conn.close()


def _middle_entry(book: Book, kind: str) -> Entry:
    """An entry in the middle of a chain (so links and balances after it exist)."""
    for account in book.keys:
        chain = list(reversed(book.ledger.history(account.public_hex, limit=1000)))
        for entry in chain[1:-1]:
            if entry.body.kind == kind:
                return entry
    raise AssertionError(f"no {kind} in the middle of a chain")


ENTRY_FIELDS = [
    ("amount", "amount + 1", "entry_hash"),
    ("counterparty", "(SELECT account FROM ledger_accounts WHERE account <> ledger_entries.account AND "
                     "account <> ledger_entries.counterparty LIMIT 1)", "entry_hash"),
    ("sig", "(SELECT sig FROM ledger_entries e2 WHERE e2.id <> ledger_entries.id LIMIT 1)", "entry_signature"),
    ("prev", "'" + "ab" * 32 + "'", "entry_hash"),
    ("seq", "seq + 1000", "entry_hash"),
    ("balance", "balance + 5", "entry_hash"),
    ("kind", "CASE kind WHEN 'credit' THEN 'debit' ELSE 'credit' END", "entry_hash"),
    ("ref", "'" + "cd" * 32 + "'", "entry_hash"),
    ("nonce", "'" + "ef" * 32 + "'", "entry_hash"),
    ("created_at", "created_at + 1", "entry_hash"),
    ("signer", "account", "entry_hash"),
    ("id", "'" + "12" * 32 + "'", "entry_hash"),
]


@pytest.mark.parametrize(("column", "value", "code"), ENTRY_FIELDS, ids=[c for c, _, _ in ENTRY_FIELDS])
@pytest.mark.parametrize("kind", ["debit", "credit"])
def test_changing_any_field_of_an_entry_is_named_by_verify(book: Book, column: str, value: str, code: str,
                                                           kind: str) -> None:
    target = _middle_entry(book, kind)
    _attack(book, f"UPDATE ledger_entries SET {column} = {value} WHERE id = ?", params=(target.id,))
    report = book.ledger.verify()
    assert not report.ok
    first = report.first
    assert first is not None
    stored_seq = book.db.scalar("SELECT seq FROM ledger_entries WHERE account = ? AND sig IS NOT NULL AND "
                                "(id = ? OR id = '" + "12" * 32 + "') LIMIT 1", (target.body.account, target.id))
    assert (first.account, first.seq, first.code) == (target.body.account, stored_seq, code), report.problems[:3]
    assert first.entry_id in (target.id, "12" * 32)
    assert target.body.account[:12] in first.message


def test_deleting_an_entry_is_a_gap_the_verifier_names(book: Book) -> None:
    target = _middle_entry(book, "debit")
    _attack(book, "DELETE FROM ledger_entries WHERE id = ?", params=(target.id,))
    first = book.ledger.verify().first
    assert first is not None
    assert (first.account, first.seq, first.code) == (target.body.account, target.body.seq + 1, "seq_gap")


@pytest.mark.parametrize(("column", "value"), [("amount", "amount + 1"), ("memo", "'other'"),
                                               ("payee", "(SELECT account FROM ledger_accounts WHERE account NOT IN "
                                                         "(ledger_transfers.payer, ledger_transfers.payee) LIMIT 1)"),
                                               ("sig", "(SELECT sig FROM ledger_entries LIMIT 1)"),
                                               ("valid_after", "valid_after + 1")])
def test_changing_a_payer_authorisation_is_named_at_the_entries_that_cite_it(book: Book, column: str,
                                                                            value: str) -> None:
    target = _middle_entry(book, "debit")
    _attack(book, f"UPDATE ledger_transfers SET {column} = {value} WHERE id = ?", params=(target.body.ref,))
    report = book.ledger.verify()
    first = report.first
    assert first is not None and first.code == "bad_authorisation"
    cited = {(e.body.account, e.body.seq) for e in book.store.scan_entries() if e.body.ref == target.body.ref}
    assert (first.account, first.seq) in cited and len(cited) == 2


def test_changing_a_treasury_order_is_named_at_its_mint(book: Book) -> None:
    account = book.keys[2].public_hex
    _attack(book, "UPDATE ledger_treasury SET amount = amount * 10 WHERE account = ?", params=(account,))
    first = book.ledger.verify().first
    assert first is not None and (first.account, first.seq, first.code) == (account, 1, "bad_authorisation")


def test_a_forged_mint_without_the_node_key_is_caught(book: Book) -> None:
    """The attacker adds credits with a well-formed entry and order, signed by a key of their own."""
    from colony.identity import KINDS, SchnorrKey
    from colony.ledger._sigs import Signer
    from colony.ledger.wire import EntryBody, MintOrder, entry_event_id

    thief = Signer(SchnorrKey.generate())
    victim = book.keys[3].public_hex
    head = book.ledger.balance(victim)
    order = MintOrder(account=victim, amount=10**9, nonce="77" * 32, reason="free money")
    order_event = thief.event(KINDS["treasury"], order.content(), 1)
    body = EntryBody(account=victim, seq=head.seq + 1, prev=head.head, kind="mint", amount=10**9,
                     balance=head.balance + 10**9, counterparty=None, ref=order_event.id, nonce=order.nonce)
    eid = entry_event_id(body, thief.public_hex, 1, KINDS["ledger_entry"])
    _attack(book, "INSERT INTO ledger_treasury VALUES (?, ?, ?, ?, ?, ?, 1, ?, 'x', 0)",
            params=(order_event.id, thief.public_hex, victim, 10**9, "free money", order.nonce, order_event.sig))
    _attack(book, "INSERT INTO ledger_entries VALUES (?, ?, ?, 'mint', ?, ?, NULL, ?, ?, ?, 1, ?, ?)",
            params=(victim, body.seq, body.prev, 10**9, body.balance, body.ref, body.nonce, thief.public_hex, eid,
                    thief.sign_id(eid)))
    report = book.ledger.verify()
    codes = {(p.account, p.seq, p.code) for p in report.problems}
    assert (victim, body.seq, "wrong_signer") in codes and not report.ok


@pytest.mark.parametrize(("sql", "code"), [
    ("UPDATE ledger_accounts SET balance = balance + 1 WHERE account = ?", "cache"),
    ("UPDATE ledger_accounts SET held = held + 1 WHERE account = ?", "cache"),
    ("UPDATE ledger_accounts SET head = '" + "34" * 32 + "' WHERE account = ?", "cache"),
])
def test_changing_the_balance_cache_is_named_at_the_account(book: Book, sql: str, code: str) -> None:
    account = book.keys[1].public_hex
    _attack(book, sql, params=(account,))
    first = book.ledger.verify().first
    assert first is not None and (first.account, first.code) == (account, code)
    assert first.seq == book.db.scalar("SELECT max(seq) FROM ledger_entries WHERE account = ?", (account,))


@pytest.mark.parametrize(("sql", "code"), [
    ("UPDATE ledger_holds SET state = 'released' WHERE state = 'held'", "hold_state"),
    ("UPDATE ledger_supply SET minted = minted + 1", "supply_counter"),
    ("UPDATE ledger_tree SET hash = '" + EMPTY_ROOT + "' WHERE depth = 0", "state_root"),
])
def test_changing_the_other_caches_is_caught(book: Book, sql: str, code: str) -> None:
    _attack(book, sql)
    report = book.ledger.verify()
    assert not report.ok and report.problems[0].code == code


def test_a_stale_node_inside_the_state_tree_is_caught(book: Book) -> None:
    """The root is intact but one inner node's slots were changed: replicas would be misled."""
    _attack(book, "UPDATE ledger_tree SET slots = zeroblob(512) WHERE (depth, prefix) = "
                  "(SELECT depth, prefix FROM ledger_tree WHERE depth = 2 LIMIT 1)")
    report = book.ledger.verify()
    assert [p.code for p in report.problems] == ["state_tree"]
