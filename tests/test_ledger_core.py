"""The ledger core on real SQLite with real signatures: transfers, idempotency, refusals, the
invariants the database itself enforces, escrow holds, the treasury, exports and the verifier."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colony.errors import StoreError
from colony.identity import KINDS, Event, SchnorrKey, event_id, verify_event
from colony.ledger import (
    MICRO,
    HoldNotFoundError,
    IllegalHoldTransitionError,
    InvalidAuthorisationError,
    LedgerError,
    TransferRefusedError,
    export_lines,
    format_amount,
    parse_amount,
    read_lines,
    sign_transfer,
    verify_feed,
)
from colony.ledger.wire import GENESIS, EntryBody, TransferAuth, canonical_json, entry_event_id
from colony.observability.metrics import registry, reset_metrics
from ledger_helpers import Book, open_book


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    b = open_book(tmp_path / "ledger.db", accounts=3, funds=100 * MICRO)
    yield b
    b.close()


def _signed(key: SchnorrKey, fields: dict[str, object], *, created_at: int, tags: list[list[str]] | None = None,
            content: str | None = None) -> Event:
    """An authorisation event built by hand, so tests can send what a careless or hostile client would."""
    body = canonical_json(fields) if content is None else content
    eid = event_id(key.public_hex, created_at, KINDS["transfer"], tags or [], body)
    return Event(id=eid, pubkey=key.public_hex, created_at=created_at, kind=KINDS["transfer"], tags=tags or [],
                 content=body, sig=key.sign(bytes.fromhex(eid)).hex())


def _fields(payer: SchnorrKey, payee: str | None, amount: object, now: float, **over: object) -> dict[str, object]:
    fields: dict[str, object] = {"v": 1, "op": "transfer", "from": payer.public_hex, "to": payee, "amount": amount,
                                 "nonce": secrets.token_hex(32), "valid_after": int(now) - 10,
                                 "valid_before": int(now) + 200, "memo": ""}
    fields.update(over)
    return fields


def _rows(book: Book, table: str) -> int:
    return int(book.db.scalar(f"SELECT count(*) FROM {table}"))


# -- amounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "micro"), [("1", MICRO), ("1.5", 1_500_000), ("0.000001", 1), ("12.34", 12_340_000),
                                            ("2500u", 2500), (" 3 ", 3 * MICRO), (7, 7)])
def test_amounts_parse_exactly(text: str | int, micro: int) -> None:
    assert parse_amount(text) == micro
    assert parse_amount(format_amount(micro)) == micro


@pytest.mark.parametrize("text", ["0", "-1", "1.0000001", "1e3", "1,000", "abc", "0u", "", "NaN", "1.", ".5", True])
def test_amounts_refuse_what_is_not_a_positive_exact_amount(text: str | bool) -> None:
    with pytest.raises(ValueError, match="amount"):
        parse_amount(text)


# -- transfers ----------------------------------------------------------------------------------


def test_a_transfer_writes_a_signed_debit_and_credit_linked_into_each_chain(book: Book) -> None:
    a, b, _ = book.keys
    result = book.ledger.pay(a, b.public_hex, 30 * MICRO, memo="lunch")
    assert result.status == "applied" and not result.replayed
    assert book.balance(a) == 70 * MICRO and book.balance(b) == 130 * MICRO
    debit, mint_a = book.ledger.history(a.public_hex, limit=2)
    credit = book.ledger.history(b.public_hex, limit=1)[0]
    assert [debit.id, credit.id] == result.entries
    assert (debit.body.kind, debit.body.seq, debit.body.prev, debit.body.counterparty) == ("debit", 2, mint_a.id,
                                                                                          b.public_hex)
    assert (credit.body.kind, credit.body.amount, credit.body.balance) == ("credit", 30 * MICRO, 130 * MICRO)
    assert mint_a.body.prev == GENESIS
    for entry in (debit, credit, mint_a):  # each entry is a NIP-01 event signed by the home node
        event = entry.event()
        assert verify_event(event) and event.pubkey == book.node_key.public_hex
        assert event.kind == KINDS["ledger_entry"]
        assert entry_event_id(entry.body, entry.signer, entry.created_at, KINDS["ledger_entry"]) == entry.id
    assert book.ledger.verify().ok


def test_a_retried_nonce_is_applied_once_and_returns_the_first_result(book: Book) -> None:
    a, b, _ = book.keys
    event = sign_transfer(a, b.public_hex, 5 * MICRO, now=book.clock())
    first = book.ledger.transfer(event)
    again = book.ledger.transfer(event.model_dump())  # as JSON would bring it back
    assert again.replayed and again.model_copy(update={"replayed": False}) == first
    assert book.balance(a) == 95 * MICRO and _rows(book, "ledger_transfers") == 1
    book.clock.now += 3600  # long after the window: still the first result, not a refusal
    assert book.ledger.transfer(event).entries == first.entries


def test_the_same_nonce_with_other_content_is_refused_and_changes_nothing(book: Book) -> None:
    a, b, c = book.keys
    nonce = secrets.token_hex(32)
    book.ledger.pay(a, b.public_hex, MICRO, nonce=nonce)
    before = book.ledger.root()
    with pytest.raises(InvalidAuthorisationError) as info:
        book.ledger.pay(a, c.public_hex, MICRO, nonce=nonce)
    assert info.value.code == "nonce_already_used"
    assert book.ledger.root() == before and book.balance(c) == 100 * MICRO
    # Another payer's nonce space is its own: nobody can burn a payer's nonce before it is used.
    assert book.ledger.pay(b, c.public_hex, MICRO, nonce=nonce).status == "applied"


def test_insufficient_funds_is_refused_recorded_and_never_released(book: Book) -> None:
    a, b, c = book.keys
    event = sign_transfer(a, b.public_hex, 150 * MICRO, now=book.clock())
    with pytest.raises(TransferRefusedError) as info:
        book.ledger.transfer(event)
    assert info.value.code == "insufficient_funds" and info.value.result.payer_balance == 100 * MICRO
    book.ledger.pay(c, a.public_hex, 90 * MICRO)  # now a could pay it...
    with pytest.raises(TransferRefusedError) as again:  # ...but the nonce's result is the refusal
        book.ledger.transfer(event)
    assert again.value.result.replayed and book.balance(a) == 190 * MICRO
    assert book.ledger.verify().ok


def test_metrics_count_transfers_by_outcome(book: Book) -> None:
    reset_metrics()
    a, b, _ = book.keys
    event = sign_transfer(a, b.public_hex, MICRO, now=book.clock())
    book.ledger.transfer(event)
    book.ledger.transfer(event)
    with pytest.raises(TransferRefusedError):
        book.ledger.pay(a, b.public_hex, 1000 * MICRO)
    with pytest.raises(InvalidAuthorisationError):
        book.ledger.pay(a, a.public_hex, MICRO)
    reg = registry()

    def count(outcome: str, reason: str) -> float:
        return reg.get_sample_value("colony_ledger_transfers_total", {"outcome": outcome, "reason": reason}) or 0.0

    assert (count("applied", ""), count("replayed", ""), count("refused", "insufficient_funds"),
            count("invalid", "self_payment")) == (1, 1, 1, 1)


@pytest.mark.parametrize(("case", "code"), [
    ("self_payment", "self_payment"),
    ("zero", "invalid_payload"),
    ("negative", "invalid_payload"),
    ("float", "invalid_payload"),
    ("string_amount", "invalid_payload"),
    ("window_too_long", "invalid_window"),
    ("expired", "authorization_expired"),
    ("not_yet_valid", "authorization_not_yet_valid"),
    ("not_canonical", "invalid_payload"),
    ("tags", "invalid_payload"),
    ("signed_by_someone_else", "invalid_payload"),
    ("bad_signature", "invalid_signature"),
    ("id_not_of_fields", "invalid_signature"),
    ("unknown_field", "invalid_payload"),
    ("payee_not_a_key", "invalid_payload"),
    ("payee_off_curve", "invalid_account"),
    ("pay_the_node", "payment_to_node"),
    ("hold_sent_as_transfer", "invalid_payload"),
])
def test_invalid_authorisations_are_refused_before_anything_is_written(book: Book, case: str, code: str) -> None:
    a, b, _ = book.keys
    now = book.clock()
    to = b.public_hex
    fields = _fields(a, to, MICRO, now)
    event: Event | dict[str, object]
    if case == "self_payment":
        event = _signed(a, _fields(a, a.public_hex, MICRO, now), created_at=int(now))
    elif case in ("zero", "negative", "float", "string_amount"):
        amount = {"zero": 0, "negative": -5, "float": 1.5, "string_amount": "1000"}[case]
        event = _signed(a, _fields(a, to, amount, now), created_at=int(now))
    elif case == "window_too_long":
        event = _signed(a, _fields(a, to, MICRO, now, valid_before=int(now) + 400), created_at=int(now))
    elif case == "expired":
        event = _signed(a, _fields(a, to, MICRO, now, valid_after=int(now) - 300, valid_before=int(now) - 1),
                        created_at=int(now))
    elif case == "not_yet_valid":
        event = _signed(a, _fields(a, to, MICRO, now, valid_after=int(now) + 60, valid_before=int(now) + 300),
                        created_at=int(now))
    elif case == "not_canonical":
        event = _signed(a, fields, created_at=int(now), content=json.dumps(fields))
    elif case == "tags":
        event = _signed(a, fields, created_at=int(now), tags=[["p", to]])
    elif case == "signed_by_someone_else":
        event = _signed(b, fields, created_at=int(now))  # b signs a payment out of a's account
    elif case == "bad_signature":
        good = _signed(a, fields, created_at=int(now))
        event = good.model_copy(update={"sig": b.sign(bytes.fromhex(good.id)).hex()})
    elif case == "id_not_of_fields":
        good = _signed(a, fields, created_at=int(now))
        other = _signed(a, {**fields, "amount": 99 * MICRO}, created_at=int(now))
        event = other.model_copy(update={"id": good.id, "sig": good.sig})  # a valid signature over another id
    elif case == "unknown_field":
        event = _signed(a, {**fields, "fee": 1}, created_at=int(now))
    elif case == "payee_not_a_key":
        event = _signed(a, _fields(a, "bob", MICRO, now), created_at=int(now))
    elif case == "payee_off_curve":
        event = _signed(a, _fields(a, "f" * 64, MICRO, now), created_at=int(now))
    elif case == "pay_the_node":
        event = _signed(a, _fields(a, book.node_key.public_hex, MICRO, now), created_at=int(now))
    else:
        event = _signed(a, {**fields, "op": "hold"}, created_at=int(now))
    before = (book.ledger.root(), _rows(book, "ledger_transfers"), _rows(book, "ledger_entries"))
    with pytest.raises(InvalidAuthorisationError) as info:
        book.ledger.transfer(event)
    assert info.value.code == code, str(info.value)
    assert (book.ledger.root(), _rows(book, "ledger_transfers"), _rows(book, "ledger_entries")) == before


# -- the database enforces the invariants itself --------------------------------------------------


def _raw(book: Book) -> apsw.Connection:
    return apsw.Connection(str(book.path))


@pytest.mark.parametrize(("sql", "error"), [
    ("UPDATE ledger_entries SET amount = amount + 1", "append-only"),
    ("DELETE FROM ledger_entries WHERE seq = 1", "append-only"),
    ("UPDATE ledger_transfers SET amount = 1", "never changed"),
    ("DELETE FROM ledger_transfers", "never released"),
    ("UPDATE ledger_treasury SET amount = 1", "audit record"),
    ("DELETE FROM ledger_treasury", "audit record"),
    ("UPDATE ledger_accounts SET balance = -1", "CHECK"),
    ("UPDATE ledger_holds SET state = 'held'", "only moves"),
])
def test_the_database_refuses_edits_that_break_invariants(book: Book, sql: str, error: str) -> None:
    a, b, _ = book.keys
    book.ledger.pay(a, b.public_hex, MICRO)
    hold = book.ledger.pay(a, None, MICRO, op="hold")
    book.ledger.release(hold.transfer_id)
    conn = _raw(book)
    with pytest.raises(apsw.ConstraintError, match=error):
        conn.execute(sql)
    conn.close()
    assert book.ledger.verify().ok


def _insert_entry(book: Book, body: EntryBody) -> None:
    signer = book.ledger.signer
    eid = entry_event_id(body, signer.public_hex, 1, KINDS["ledger_entry"])
    book.db.execute("INSERT INTO ledger_entries(account, seq, prev, kind, amount, balance, counterparty, ref, nonce, "
                    "signer, created_at, id, sig) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (body.account, body.seq, body.prev, body.kind, body.amount, body.balance, body.counterparty,
                     body.ref, body.nonce, signer.public_hex, 1, eid, signer.sign_id(eid)))


@pytest.mark.parametrize(("change", "error"), [
    ({"seq": 3}, "head \\+ 1"),
    ({"seq": 1}, "head \\+ 1"),
    ({"prev": "ab" * 32}, "hash of its account's head"),
    ({"amount": 200 * MICRO, "balance": -100 * MICRO}, "CHECK"),
    ({"balance": 100 * MICRO}, "balance must follow"),
    ({"amount": 0, "balance": 100 * MICRO}, "CHECK"),
    ({"amount": 1.5, "balance": 100 * MICRO - 1.5}, "cannot store REAL"),
    ({"counterparty": "SELF"}, "CHECK"),
])
def test_the_database_refuses_entries_that_break_the_chain_or_go_negative(book: Book, change: dict[str, object],
                                                                          error: str) -> None:
    a = book.keys[0]
    head = book.ledger.balance(a.public_hex)
    fields: dict[str, object] = {"account": a.public_hex, "seq": head.seq + 1, "prev": head.head, "kind": "debit",
                                 "amount": MICRO, "balance": head.balance - MICRO, "counterparty": book.keys[1].public_hex,
                                 "ref": "cd" * 32, "nonce": "ef" * 32}
    fields.update(change)
    if fields["counterparty"] == "SELF":
        fields["counterparty"] = a.public_hex
    with pytest.raises(StoreError, match=error):
        _insert_entry(book, EntryBody(**fields))  # type: ignore[arg-type]
    assert book.ledger.balance(a.public_hex) == head


def test_an_entry_signed_by_another_node_cannot_join_a_chain(tmp_path: Path) -> None:
    book = open_book(tmp_path / "l.db", accounts=1, funds=MICRO)
    other = open_book(tmp_path / "o.db")
    a = book.keys[0]
    head = book.ledger.balance(a.public_hex)
    body = EntryBody(account=a.public_hex, seq=head.seq + 1, prev=head.head, kind="mint", amount=1,
                     balance=head.balance + 1, counterparty=None, ref="cd" * 32, nonce="ef" * 32)
    eid = entry_event_id(body, other.node_key.public_hex, 1, KINDS["ledger_entry"])
    with pytest.raises(StoreError, match="home node"):
        book.db.execute("INSERT INTO ledger_entries(account, seq, prev, kind, amount, balance, counterparty, ref, "
                        "nonce, signer, created_at, id, sig) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (*[getattr(body, f) for f in ("account", "seq", "prev", "kind", "amount", "balance",
                                                      "counterparty", "ref", "nonce")],
                         other.node_key.public_hex, 1, eid, other.ledger.signer.sign_id(eid)))
    book.close()
    other.close()


def test_the_database_refuses_nonce_reuse_self_payment_and_long_windows(book: Book) -> None:
    a, b, _ = book.keys
    book.ledger.pay(a, b.public_hex, MICRO)
    row = book.db.one("SELECT * FROM ledger_transfers")
    assert row is not None
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    for change, error in [({}, "UNIQUE"), ({"nonce": "11" * 32, "payee": a.public_hex}, "CHECK"),
                          ({"nonce": "22" * 32, "valid_before": row["valid_after"] + 301}, "CHECK"),
                          ({"nonce": "33" * 32, "amount": 0}, "CHECK")]:
        with pytest.raises(StoreError, match=error):
            book.db.execute(f"INSERT INTO ledger_transfers({columns}) VALUES ({marks})", list({**row, **change}.values()))


# -- escrow holds -------------------------------------------------------------------------------


def test_a_hold_then_capture_pays_the_payee_and_a_second_move_is_refused(book: Book) -> None:
    a, b, c = book.keys
    hold = book.ledger.pay(a, None, 40 * MICRO, op="hold", memo="task 7")
    view = book.ledger.balance(a.public_hex)
    assert (view.balance, view.held) == (60 * MICRO, 40 * MICRO)
    captured = book.ledger.capture(hold.transfer_id, c.public_hex)
    assert (captured.state, captured.captured_to) == ("captured", c.public_hex)
    assert book.balance(c) == 140 * MICRO and book.ledger.balance(a.public_hex).held == 0
    kinds = [e.body.kind for e in book.ledger.history(a.public_hex)]
    assert kinds[:2] == ["capture", "hold"]
    before = book.ledger.root()
    for move in (lambda: book.ledger.release(hold.transfer_id), lambda: book.ledger.capture(hold.transfer_id, b.public_hex)):
        with pytest.raises(IllegalHoldTransitionError, match="from captured"):
            move()
    assert book.ledger.root() == before and book.balance(b) == 100 * MICRO
    assert book.ledger.verify().ok


def test_a_released_hold_returns_to_the_payer_and_a_hold_for_one_payee_pays_only_them(book: Book) -> None:
    a, b, c = book.keys
    hold = book.ledger.pay(a, b.public_hex, 10 * MICRO, op="hold")
    with pytest.raises(InvalidAuthorisationError, match="authorised for"):
        book.ledger.capture(hold.transfer_id, c.public_hex)
    assert book.ledger.release(hold.transfer_id).state == "released"
    assert book.balance(a) == 100 * MICRO
    with pytest.raises(IllegalHoldTransitionError):
        book.ledger.capture(hold.transfer_id, b.public_hex)
    to_b = book.ledger.pay(a, b.public_hex, 10 * MICRO, op="hold")
    assert book.ledger.capture(to_b.transfer_id).captured_to == b.public_hex  # the payee it names
    with pytest.raises(HoldNotFoundError):
        book.ledger.release("00" * 32)
    with pytest.raises(TransferRefusedError, match="insufficient"):
        book.ledger.pay(a, None, 91 * MICRO, op="hold")
    assert book.ledger.verify().ok


# -- the treasury -------------------------------------------------------------------------------


def test_minting_is_a_signed_audited_treasury_order_and_tracks_supply(book: Book) -> None:
    a = book.keys[0]
    result = book.ledger.mint(a.public_hex, 5 * MICRO, "bounty for issue 13", actor="test", nonce="aa" * 32)
    assert result.supply == 305 * MICRO == book.store.supply()
    row = book.db.one("SELECT * FROM ledger_treasury WHERE id = ?", (result.treasury_id,))
    assert row is not None and (row["reason"], row["actor"], row["signer"]) == ("bounty for issue 13", "test",
                                                                             book.node_key.public_hex)
    [mint] = [m for m in book.store.mints() if m.id == result.treasury_id]
    assert verify_event(mint.event()) and mint.event().kind == KINDS["treasury"]
    assert book.ledger.mint(a.public_hex, 5 * MICRO, "bounty for issue 13", nonce="aa" * 32).entry == result.entry
    with pytest.raises(InvalidAuthorisationError, match="reason"):
        book.ledger.mint(a.public_hex, MICRO, "   ")
    assert book.ledger.verify().ok


# -- exports and the verifier on a file -----------------------------------------------------------


def test_an_export_verifies_from_the_file_alone_and_a_changed_line_is_caught(book: Book) -> None:
    a, b, c = book.keys
    book.ledger.pay(a, b.public_hex, 3 * MICRO)
    hold = book.ledger.pay(b, None, MICRO, op="hold")
    book.ledger.capture(hold.transfer_id, c.public_hex)
    lines = list(export_lines(book.store))
    assert all(verify_event(json.loads(line)) for line in lines)
    report = verify_feed(read_lines(lines))
    assert report.ok and not report.partial and report.entries == _rows(book, "ledger_entries")
    assert report.supply == 300 * MICRO
    one = verify_feed(read_lines(export_lines(book.store, a.public_hex)))
    assert one.ok and one.partial and one.accounts == 1
    # A relay changes one amount in an entry's content (and re-derives nothing): caught at that entry.
    target = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == KINDS["ledger_entry"])
    event = json.loads(lines[target])
    content = json.loads(event["content"])
    content["amount"] += 1
    event["content"] = canonical_json(content)
    bad = [*lines[:target], json.dumps(event), *lines[target + 1:], "not json"]
    report = verify_feed(read_lines(bad))
    assert not report.ok
    codes = {p.code for p in report.problems}
    assert {"entry_hash", "unreadable"} <= codes
    first = next(p for p in report.problems if p.code == "entry_hash")
    assert (first.account, first.seq) == (content["account"], content["seq"])


def test_a_transfer_auth_from_another_node_client_round_trips_as_json(book: Book) -> None:
    a, b, _ = book.keys
    wire = json.loads(sign_transfer(a, b.public_hex, 2 * MICRO, memo="naïve café ☕").model_dump_json())
    result = book.ledger.transfer(wire)
    assert result.status == "applied"
    stored = next(st for st, _, _ in book.store.transfers() if st.id == result.transfer_id)
    assert stored.event().model_dump() == wire and stored.auth == TransferAuth(
        op="transfer", payer=a.public_hex, payee=b.public_hex, amount=2 * MICRO, nonce=stored.auth.nonce,
        valid_after=stored.auth.valid_after, valid_before=stored.auth.valid_before, memo="naïve café ☕")


def test_remote_accounts_are_refused_until_federation(book: Book, tmp_path: Path) -> None:
    other = open_book(tmp_path / "other.db", accounts=1, funds=MICRO)
    # An account homed on another node cannot be written here (its home signs its chain).
    book.db.execute("INSERT INTO ledger_accounts(account, home, seq, head, balance) VALUES (?, ?, 0, ?, 0)",
                    (other.keys[0].public_hex, other.node_key.public_hex, GENESIS))
    with pytest.raises(TransferRefusedError, match="remote_account"):
        book.ledger.pay(book.keys[0], other.keys[0].public_hex, 1)
    with pytest.raises(LedgerError, match="another node"):
        book.ledger.mint(other.keys[0].public_hex, 1, "x")
    other.close()


def test_an_export_of_each_account_alone_verifies_as_a_partial_feed(book: Book) -> None:
    a, b, c = book.keys
    book.ledger.pay(a, b.public_hex, MICRO)
    captured = book.ledger.pay(b, None, MICRO, op="hold")
    book.ledger.capture(captured.transfer_id, c.public_hex)
    released = book.ledger.pay(c, a.public_hex, MICRO, op="hold")
    book.ledger.release(released.transfer_id)
    for key in (a, b, c):
        report = verify_feed(read_lines(export_lines(book.store, key.public_hex)))
        assert report.ok and report.partial, (key, report.problems)


def test_the_public_api_and_the_error_branch() -> None:
    import colony.ledger as ledger
    from colony.errors import ColonyError
    from colony.ledger import errors

    for name in ledger.__all__:
        assert getattr(ledger, name) is not None, name
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, ColonyError) and cls.code, name


_HEXISH = st.text(alphabet='0123456789abcdef"\\,:{}A \u00e9', min_size=0, max_size=70)
_MAYBE_HEX = st.one_of(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), _HEXISH)


@settings(max_examples=300, deadline=None)
@given(account=_MAYBE_HEX, prev=_MAYBE_HEX, ref=_MAYBE_HEX, nonce=_MAYBE_HEX, signer=_MAYBE_HEX,
       counterparty=st.one_of(st.none(), _MAYBE_HEX),
       kind=st.one_of(st.sampled_from(["debit", "credit", "hold", "capture", "release", "mint"]), _HEXISH),
       numbers=st.tuples(st.integers(-5, 2**60), st.integers(-5, 2**60), st.integers(-5, 2**40),
                         st.integers(-5, 2**40)))
def test_the_fast_entry_hash_is_exactly_the_nip01_id_whatever_the_fields(
        account: str, prev: str, ref: str, nonce: str, signer: str, counterparty: str | None, kind: str,
        numbers: tuple[int, int, int, int]) -> None:
    """The verifier's fast path must never differ from `event_id` of the canonical content, even for
    tampered fields (quotes, backslashes, wrong lengths, negative numbers)."""
    amount, balance, seq, created_at = numbers
    body = EntryBody(account=account, seq=seq, prev=prev, kind=kind, amount=amount, balance=balance,
                     counterparty=counterparty, ref=ref, nonce=nonce)
    assert entry_event_id(body, signer, created_at, KINDS["ledger_entry"]) == event_id(
        signer, created_at, KINDS["ledger_entry"], [], body.content())
